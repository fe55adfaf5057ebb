// Shared by every k6 script in loadtests/: configuration (BASE_URL, SCALE), the load profiles of
// the original report scaled by SCALE, the API calls with their checks and accounting counters,
// the ledger walk run in teardown, thresholds, and handleSummary (JSON + text into
// loadtests/results/).
//
// Accounting: every 200/201 a VU receives is counted (k6 Counters: per buyer for the tracked buyers,
// in the totals for the others; the summary's totals add the two, so each answer costs the VU one
// pair of counter samples, not two).
// k6's teardown cannot read VU memory, so the counters reach the end only through the summary:
// handleSummary compares them with the final balances teardown read through the API, and
// loadtests/run compares them with the database. Invariants that need no counting (versions n..1
// without gap, sum of entries == balance, each paid order PAID once) are checked in teardown and
// fail the run through the `consistency_errors` threshold.
import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter, Gauge, Trend } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const SCALE = envFloat('SCALE', 1);
if (!(SCALE > 0)) throw new Error(`SCALE must be a positive number, got "${__ENV.SCALE}"`);

// Demo data loaded by `payment-engine serve --seed`: buyers 1..7 charged 1,000,000 points each,
// pending orders 1..107, and one paid order per buyer (107 + buyer, payment `buyer`).
export const DEMO_BUYERS = 7;
export const DEMO_ORDERS = 107;
export const demoOrderBuyer = (orderId) => ((orderId - 1) % DEMO_BUYERS) + 1;
export const demoOrderTotal = (orderId) => 1000 + (orderId % 10) * 100;

// The one scenario every script runs is called `load`: setup and teardown requests (funding,
// ledger walk) carry no `scenario` tag, so `{scenario:load}` selects the measured requests only.
export const LOAD = 'load';

// ---------------------------------------------------------------------------------------------
// Small helpers

export function envInt(name, def) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return def;
  const n = parseInt(raw, 10);
  if (Number.isNaN(n)) throw new Error(`${name} must be an integer, got "${raw}"`);
  return n;
}

export function envFloat(name, def) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return def;
  const n = parseFloat(raw);
  if (Number.isNaN(n)) throw new Error(`${name} must be a number, got "${raw}"`);
  return n;
}

/** A random integer in lo..hi (both included). */
export const randInt = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));

export const range = (first, count) => Array.from({ length: count }, (_, i) => first + i);

/** '1m30s', '10s', '500ms', '1h' -> milliseconds. */
export function parseDuration(text) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  const unit = { ms: 1, s: 1000, m: 60000, h: 3600000 };
  let ms = 0;
  let matched = '';
  let m;
  while ((m = re.exec(text)) !== null) {
    ms += parseFloat(m[1]) * unit[m[2]];
    matched += m[0];
  }
  if (matched !== text) throw new Error(`cannot parse duration "${text}"`);
  return ms;
}

/** A duration scaled by SCALE, as k6 accepts it ('6000ms'); at least 100 ms. */
export const scaled = (duration) => `${Math.max(100, Math.round(parseDuration(duration) * SCALE))}ms`;

// ---------------------------------------------------------------------------------------------
// Load profiles. Durations are the report's; `scenario()` scales them by SCALE.

export const PROFILES = {
  // 1. charge, peak throughput: ramp to 100 VUs over 1 min, no sleep.
  'charge-peak': { executor: 'ramping-vus', startVUs: 0, stages: [['1m', 100]] },
  // 2. charge spike: 10 VUs for 10 s, to 100 in 10 s, hold 30 s, down in 10 s.
  'charge-spike': {
    executor: 'ramping-vus', startVUs: 10,
    stages: [['10s', 10], ['10s', 100], ['30s', 100], ['10s', 0]],
  },
  // 3. charge sustained: to 25 VUs in 1 min, 50 VUs for 3 min, down in 1 min.
  'charge-sustained': {
    executor: 'ramping-vus', startVUs: 0,
    stages: [['1m', 25], ['1s', 50], ['3m', 50], ['1m', 0]],
  },
  // 4. payment peak: 50 VUs for 1 min (sleep(1) per iteration in the script).
  'payment-peak': { executor: 'constant-vus', vus: 50, duration: '1m' },
  // 5. payment spike: 10 -> 100 -> 10 VUs, 10 s each.
  'payment-spike': { executor: 'ramping-vus', startVUs: 10, stages: [['10s', 10], ['10s', 100], ['10s', 10]] },
  // 6. payment sustained: 50 VUs for 5 min.
  'payment-sustained': { executor: 'constant-vus', vus: 50, duration: '5m' },
  // Ceiling: the peak ramp (to 100 VUs over 1 min) for any flow, meant without think time.
  ceiling: { executor: 'ramping-vus', startVUs: 0, stages: [['1m', 100]] },
};

/** Open-model (arrival-rate) versions of the spikes: iterations per second instead of VUs. */
export const OPEN_SHAPES = {
  // charge spike: base for 10 s, to peak in 10 s, hold 30 s, back to base in 10 s.
  'charge-spike': (base, peak) => [['10s', base], ['10s', peak], ['30s', peak], ['10s', base]],
  // payment spike: base -> peak -> base, 10 s each.
  'payment-spike': (base, peak) => [['10s', base], ['10s', peak], ['10s', base]],
};

function scaleStages(stages) {
  return stages.map(([duration, target]) => ({ duration: scaled(duration), target }));
}

/** The k6 scenario (named `load`) of a closed-model profile, scaled by SCALE. */
export function scenario(profileName) {
  const p = PROFILES[profileName];
  if (!p) throw new Error(`unknown profile "${profileName}"; known: ${Object.keys(PROFILES).join(', ')}`);
  const s = { executor: p.executor, gracefulStop: '10s' };
  if (p.executor === 'constant-vus') {
    s.vus = p.vus;
    s.duration = scaled(p.duration);
  } else {
    s.startVUs = p.startVUs;
    s.stages = scaleStages(p.stages);
    s.gracefulRampDown = '10s';
  }
  return s;
}

/**
 * The open-model scenario of a spike shape: `base` and `peak` are iterations per second.
 * Returns { scenario, expectedIterations } (the integral of the rate, for the dropped-iterations
 * threshold).
 */
export function openScenario(shapeName, base, peak, maxVUs) {
  const stages = scaleStages(OPEN_SHAPES[shapeName](base, peak));
  let rate = base;
  let expected = 0;
  for (const st of stages) {
    expected += ((rate + st.target) / 2) * (parseDuration(st.duration) / 1000);
    rate = st.target;
  }
  return {
    scenario: {
      executor: 'ramping-arrival-rate',
      startRate: base,
      timeUnit: '1s',
      // Enough VUs for iterations of up to 200 ms at the peak rate without starting new ones
      // mid-test (k6 drops iterations while it does): dropped iterations then mean the engine
      // answered slower than that, not that k6 was caught short.
      preAllocatedVUs: Math.min(maxVUs, envInt('PRE_VUS', Math.max(20, Math.ceil(peak / 5)))),
      maxVUs,
      stages,
      gracefulStop: '10s',
    },
    expectedIterations: Math.round(expected),
  };
}

// ---------------------------------------------------------------------------------------------
// Metrics

const accepted = {
  charges: new Counter('accepted_charges'),
  chargePoints: new Counter('accepted_charge_points'),
  payments: new Counter('accepted_payments'),
  paymentPoints: new Counter('accepted_payment_points'),
  ordersCreated: new Counter('orders_created'),
  refunds: new Counter('accepted_refunds'),
  refundPoints: new Counter('accepted_refund_points'),
  cancels: new Counter('accepted_cancels'),
};
const consistencyErrors = new Counter('consistency_errors');
// Latency of the measured requests by kind and answer (http_req_duration mixes them).
const LATENCY_KINDS = ['charge_200', 'create_order_201', 'pay_200', 'pay_404', 'pay_409', 'refund_201', 'refund_422', 'cancel_200'];
const latency = {};
for (const k of LATENCY_KINDS) latency[k] = new Trend(`latency_${k}`, true);
function recordLatency(op, res) {
  const t = latency[`${op}_${res.status}`];
  if (t) t.add(res.timings.duration);
}
const loadSeconds = new Gauge('load_seconds');

// Per-buyer counters exist for the buyers a script tracks (metrics must be created in the init
// context). Beyond MAX_TRACKED buyers only the totals are counted.
export const MAX_TRACKED = 100;
const tracked = {};

/** Call in the init context with the buyer ids whose accounting should be checked one by one. */
export function trackBuyers(ids) {
  if (ids.length > MAX_TRACKED) return [];
  for (const b of ids) {
    if (tracked[b]) continue;
    tracked[b] = {
      charges: new Counter(`charges_b${b}`),
      chargePoints: new Counter(`charge_points_b${b}`),
      payments: new Counter(`payments_b${b}`),
      paymentPoints: new Counter(`payment_points_b${b}`),
      refunds: new Counter(`refunds_b${b}`),
      refundPoints: new Counter(`refund_points_b${b}`),
      finalBalance: new Gauge(`final_balance_b${b}`),
      finalVersion: new Gauge(`final_version_b${b}`),
    };
  }
  return ids;
}

export const trackedBuyers = () => Object.keys(tracked).map(Number);

// A tracked buyer's answers go to its own counters only, the others' to the totals' counters:
// k6 samples cost the VU's CPU, which the load generator shares with the engine.
function countCharge(buyerId, amount) {
  const t = tracked[buyerId];
  (t ? t.charges : accepted.charges).add(1);
  (t ? t.chargePoints : accepted.chargePoints).add(amount);
}

function countPayment(buyerId, amount) {
  const t = tracked[buyerId];
  (t ? t.payments : accepted.payments).add(1);
  (t ? t.paymentPoints : accepted.paymentPoints).add(amount);
}

function countRefund(buyerId, amount) {
  const t = tracked[buyerId];
  (t ? t.refunds : accepted.refunds).add(1);
  (t ? t.refundPoints : accepted.refundPoints).add(amount);
}

// ---------------------------------------------------------------------------------------------
// API calls. Each checks the exact status (and `code` of a problem answer) it expects, counts
// what was accepted, and returns the parsed body or null.

const JSON_HEADERS = { 'Content-Type': 'application/json' };

function body(res) {
  try {
    return res.json();
  } catch (e) {
    return null;
  }
}

const problemCode = (res) => {
  const b = body(res);
  return b && b.code;
};

/** POST /points/{buyerId}?point=N, expecting 200 with the charged amount. */
export function charge(buyerId, point, op = 'charge') {
  const res = http.post(`${BASE_URL}/points/${buyerId}?point=${point}`, null, { tags: { op, name: 'POST /points/{buyerId}' } });
  if (op === 'charge') recordLatency('charge', res);
  const b = body(res);
  const ok = check(res, {
    'charge: 200 {buyerId, amount, balance, version}': (r) =>
      r.status === 200 && b !== null && b.buyerId === buyerId && b.amount === point && b.balance >= point && b.version > 0,
  });
  if (ok) countCharge(buyerId, point);
  else logUnexpected('charge', res);
  return ok ? b : null;
}

/** POST /orders, expecting 201 PENDING with a Location header. */
export function createOrder(buyerId, totalPrice) {
  const res = http.post(`${BASE_URL}/orders`, JSON.stringify({ buyerId, totalPrice }), {
    headers: JSON_HEADERS,
    tags: { op: 'create_order', name: 'POST /orders' },
  });
  recordLatency('create_order', res);
  const b = body(res);
  const ok = check(res, {
    'create order: 201 PENDING with Location': (r) =>
      r.status === 201 && b !== null && b.buyerId === buyerId && b.totalPrice === totalPrice &&
      b.status === 'PENDING' && r.headers.Location === `/orders/${b.orderId}`,
  });
  if (ok) accepted.ordersCreated.add(1);
  else logUnexpected('create order', res);
  return ok ? b : null;
}

function cancelRequest(buyerId, orderId, expected) {
  return [
    'POST',
    `${BASE_URL}/orders/${orderId}/cancel`,
    JSON.stringify({ buyerId }),
    { headers: JSON_HEADERS, tags: { op: 'cancel', name: 'POST /orders/{orderId}/cancel' }, responseCallback: http.expectedStatuses(...expected) },
  ];
}

function refundRequest(buyerId, paymentId, amount, expected) {
  const payload = { buyerId, reason: 'load test' };
  if (amount !== null) payload.amount = amount;
  return [
    'POST',
    `${BASE_URL}/payments/${paymentId}/refunds`,
    JSON.stringify(payload),
    { headers: JSON_HEADERS, tags: { op: 'refund', name: 'POST /payments/{paymentId}/refunds' }, responseCallback: http.expectedStatuses(...expected) },
  ];
}

const isCancelled = (b, buyerId, orderId) =>
  b !== null && b.buyerId === buyerId && b.orderId === orderId && b.status === 'CANCELLED';

const isRefund = (b, buyerId, payment, amount) =>
  b !== null && b.buyerId === buyerId && b.paymentId === payment.paymentId && b.orderId === payment.orderId &&
  b.amount === amount && b.refundId > 0 && b.version > 0 && b.balance >= amount;

/** Cancels the buyer's PENDING order (or an already cancelled one): expects 200 CANCELLED. */
export function cancelOrder(buyerId, orderId, again = false) {
  const res = http.request(...cancelRequest(buyerId, orderId, [200]));
  recordLatency('cancel', res);
  const b = body(res);
  const ok = check(res, {
    [again ? 'cancel again: 200 CANCELLED' : 'cancel pending order: 200 CANCELLED']: (r) =>
      r.status === 200 && isCancelled(b, buyerId, orderId),
  });
  if (ok && !again) accepted.cancels.add(1);
  if (!ok) logUnexpected('cancel', res);
  return ok;
}

/**
 * Refunds `amount` (null: the rest) of a payment: expects 201 with the refund, or, when
 * `exceeds`, 422 refund_exceeds_payment. Returns the refunded amount (0 when refused).
 */
export function refund(buyerId, payment, amount, { exceeds = false } = {}) {
  const res = http.request(...refundRequest(buyerId, payment.paymentId, amount, [exceeds ? 422 : 201]));
  recordLatency('refund', res);
  const b = body(res);
  const ok = exceeds
    ? check(res, { 'refund past the payment: 422 refund_exceeds_payment': (r) => r.status === 422 && problemCode(r) === 'refund_exceeds_payment' })
    : check(res, { 'refund: 201 with the refund': (r) => r.status === 201 && isRefund(b, buyerId, payment, amount === null ? b.amount : amount) && b.amount > 0 });
  if (!ok) logUnexpected('refund', res);
  if (ok && !exceeds) {
    countRefund(buyerId, b.amount);
    return b.amount;
  }
  return 0;
}

/**
 * `n` concurrent partial refunds of `each` points of one payment: exactly
 * min(n, floor(amount / each)) are accepted (201), the others 422 refund_exceeds_payment.
 * Returns the points refunded.
 */
export function racingRefunds(buyerId, payment, each, n) {
  const responses = http.batch(Array.from({ length: n }, () => refundRequest(buyerId, payment.paymentId, each, [201, 422])));
  let refunded = 0;
  let accepted201 = 0;
  let rejected = 0;
  for (const r of responses) {
    recordLatency('refund', r);
    const b = body(r);
    if (r.status === 201 && isRefund(b, buyerId, payment, each)) {
      accepted201++;
      refunded += each;
      countRefund(buyerId, each);
    } else if (r.status === 422 && problemCode(r) === 'refund_exceeds_payment') rejected++;
    else logUnexpected('racing refund', r);
  }
  const fit = Math.min(n, Math.floor(payment.amount / each));
  check(null, {
    'racing refunds: exactly as many 201 as fit in the payment, the rest 422': () => accepted201 === fit && rejected === n - fit,
  });
  return refunded;
}

/**
 * Creates an order and pays it, then refunds it one of three ways: all at once, a part then the
 * rest, or three racing partial refunds of which only those that fit are accepted, followed by a
 * refund past the remainder (422).
 */
export function createPayAndRefund(buyerId, totalPrice) {
  const payment = createAndPay(buyerId, totalPrice);
  if (payment === null) return;
  const way = randInt(0, 2);
  if (way === 0) {
    refund(buyerId, payment, null);
  } else if (way === 1) {
    const part = randInt(1, totalPrice);
    refund(buyerId, payment, part);
    if (part < totalPrice) refund(buyerId, payment, null);
    refund(buyerId, payment, 1, { exceeds: true });
  } else {
    const each = Math.max(1, Math.ceil(totalPrice / randInt(2, 4)));
    const refunded = racingRefunds(buyerId, payment, each, 3);
    if (refunded + each <= totalPrice) refund(buyerId, payment, each);
    else refund(buyerId, payment, totalPrice - refunded + 1, { exceeds: true });
  }
}

/** Creates an order and cancels it; paying it then answers 409 order_cancelled, a second cancel 200. */
export function createAndCancel(buyerId, totalPrice) {
  const order = createOrder(buyerId, totalPrice);
  if (order === null || !cancelOrder(buyerId, order.orderId)) return;
  const res = http.request(...payRequest(buyerId, order.orderId, [409]));
  recordLatency('pay', res);
  if (!check(res, { 'pay cancelled order: 409 order_cancelled': (r) => r.status === 409 && problemCode(r) === 'order_cancelled' })) {
    logUnexpected('pay cancelled order', res);
  }
  cancelOrder(buyerId, order.orderId, true);
}

/**
 * A payment racing a cancel of the same new order: exactly one wins. Either the payment is 200
 * and the cancel 409 order_already_paid, or the cancel is 200 and the payment 409 order_cancelled.
 */
export function createAndRacePayCancel(buyerId, totalPrice) {
  const order = createOrder(buyerId, totalPrice);
  if (order === null) return;
  const [pay, cancel] = http.batch([payRequest(buyerId, order.orderId, [200, 409]), cancelRequest(buyerId, order.orderId, [200, 409])]);
  recordLatency('pay', pay);
  recordLatency('cancel', cancel);
  const pb = body(pay);
  const cb = body(cancel);
  const paid = pay.status === 200 && isReceipt(pb, buyerId, order.orderId, totalPrice);
  const cancelled = cancel.status === 200 && isCancelled(cb, buyerId, order.orderId);
  const ok = check(null, {
    'pay racing cancel: exactly one wins': () =>
      (paid && cancel.status === 409 && problemCode(cancel) === 'order_already_paid') ||
      (cancelled && pay.status === 409 && problemCode(pay) === 'order_cancelled'),
  });
  if (paid) countPayment(buyerId, totalPrice);
  if (cancelled) accepted.cancels.add(1);
  if (!ok) {
    logUnexpected('race: pay', pay);
    logUnexpected('race: cancel', cancel);
  }
}

function payRequest(buyerId, orderId, expected) {
  return [
    'POST',
    `${BASE_URL}/orders/payment/kafka`,
    JSON.stringify({ buyerId, orderId }),
    { headers: JSON_HEADERS, tags: { op: 'pay', name: 'POST /orders/payment/kafka' }, responseCallback: http.expectedStatuses(...expected) },
  ];
}

const isReceipt = (b, buyerId, orderId, amount) =>
  b !== null && b.buyerId === buyerId && b.orderId === orderId && b.amount === amount &&
  b.paymentId > 0 && b.version > 0 && b.balance >= 0;

/** Pays an order the buyer owns and that is PENDING: expects 200 with a receipt. */
export function payOwn(buyerId, orderId, amount) {
  const [method, url, payload, params] = payRequest(buyerId, orderId, [200]);
  const res = http.request(method, url, payload, params);
  recordLatency('pay', res);
  const b = body(res);
  const ok = check(res, { 'pay own pending order: 200 receipt': (r) => r.status === 200 && isReceipt(b, buyerId, orderId, amount) });
  if (ok) countPayment(buyerId, amount);
  else logUnexpected('pay', res);
  return ok ? b : null;
}

/** Realistic payment: create an order for the buyer (201), then pay it (200). */
export function createAndPay(buyerId, totalPrice) {
  const order = createOrder(buyerId, totalPrice);
  if (order === null) return null;
  return payOwn(buyerId, order.orderId, totalPrice);
}

/**
 * Two concurrent payments of one new order by its buyer: exactly one 200, the other 409
 * order_already_paid.
 */
export function createAndDoublePay(buyerId, totalPrice) {
  const order = createOrder(buyerId, totalPrice);
  if (order === null) return;
  const req = payRequest(buyerId, order.orderId, [200, 409]);
  const [r1, r2] = http.batch([req, req]);
  recordLatency('pay', r1);
  recordLatency('pay', r2);
  const statuses = [r1.status, r2.status].sort().join(',');
  const winner = r1.status === 200 ? r1 : r2;
  const loser = r1.status === 200 ? r2 : r1;
  const ok = check(null, {
    'double pay: exactly one 200, the other 409 order_already_paid': () =>
      statuses === '200,409' && isReceipt(body(winner), buyerId, order.orderId, totalPrice) &&
      problemCode(loser) === 'order_already_paid',
  });
  if (r1.status === 200 && isReceipt(body(r1), buyerId, order.orderId, totalPrice)) countPayment(buyerId, totalPrice);
  if (r2.status === 200 && isReceipt(body(r2), buyerId, order.orderId, totalPrice)) countPayment(buyerId, totalPrice);
  if (!ok) {
    logUnexpected('double pay (1)', r1);
    logUnexpected('double pay (2)', r2);
  }
}

/**
 * The original report's payment: a random buyer pays a random demo order 1..107. The buyer's own
 * order answers 200 (first time) or 409 order_already_paid; another buyer's order 404
 * order_not_found.
 */
export function payDemoOrder(buyerId, orderId) {
  const own = demoOrderBuyer(orderId) === buyerId;
  const [method, url, payload, params] = payRequest(buyerId, orderId, [200, 404, 409]);
  const res = http.request(method, url, payload, params);
  recordLatency('pay', res);
  const b = body(res);
  let ok;
  if (own) {
    ok = check(res, {
      "pay own demo order: 200 receipt or 409 order_already_paid": (r) =>
        (r.status === 200 && isReceipt(b, buyerId, orderId, demoOrderTotal(orderId))) ||
        (r.status === 409 && b !== null && b.code === 'order_already_paid'),
    });
    if (ok && res.status === 200) countPayment(buyerId, demoOrderTotal(orderId));
  } else {
    ok = check(res, {
      "pay another buyer's order: 404 order_not_found": (r) => r.status === 404 && b !== null && b.code === 'order_not_found',
    });
  }
  if (!ok) logUnexpected(`pay order ${orderId} by buyer ${buyerId}`, res);
  return res.status;
}

let unexpectedLogged = 0;
function logUnexpected(what, res) {
  if (unexpectedLogged >= 5) return; // per VU
  unexpectedLogged++;
  console.warn(`${what}: unexpected ${res.status} ${res.error || ''} ${String(res.body).slice(0, 300)}`);
}

// ---------------------------------------------------------------------------------------------
// setup / teardown

/**
 * Reads the tracked buyers' starting balances, then funds `fundBuyers` (counted as accepted
 * charges). Returns the setup data teardown and handleSummary use.
 */
export function setupRun({ fundBuyers = [], fund = 0 } = {}) {
  const ready = http.get(`${BASE_URL}/health/ready`);
  if (ready.status !== 200) fail(`${BASE_URL}/health/ready answered ${ready.status}: is the engine running?`);
  const start = {};
  for (const b of trackedBuyers()) {
    const res = http.get(`${BASE_URL}/points/${b}`, { tags: { op: 'read', name: 'GET /points/{buyerId}' } });
    if (res.status !== 200) fail(`GET /points/${b}: ${res.status} ${res.body}`);
    start[b] = { balance: res.json('balance'), version: res.json('version') };
  }
  for (const b of fundBuyers) {
    if (fund > 0 && charge(b, fund, 'fund') === null) fail(`funding buyer ${b} failed`);
  }
  return { start, t0: Date.now(), scale: SCALE, baseUrl: BASE_URL };
}

/** Records how long the load ran and walks every tracked buyer's ledger. */
export function teardownRun(data) {
  if (data && data.t0) loadSeconds.add((Date.now() - data.t0) / 1000);
  for (const b of trackedBuyers()) verifyLedger(b);
}

const ORDER_SAMPLE = envInt('ORDER_SAMPLE', 20);
const PAID_STATUSES = ['PAID', 'PARTIALLY_REFUNDED', 'REFUNDED'];

function consistency(ok, what) {
  check(null, { [`consistency: ${what}`]: () => ok });
  if (!ok) consistencyErrors.add(1);
  return ok;
}

/**
 * Walks GET /points/history/{buyerId} via nextCursor and checks what needs no counting:
 * versions run n..1 without gap or duplicate, each balanceAfter follows from the previous one,
 * the entries sum to the balance, each payment names a distinct order, and a sample of those
 * orders is PAID, the buyer's and of the paid amount.
 */
export function verifyLedger(buyerId) {
  const bal = http.get(`${BASE_URL}/points/${buyerId}`, { tags: { op: 'read', name: 'GET /points/{buyerId}' } });
  if (!consistency(bal.status === 200, 'balance readable')) return;
  const { balance, version } = bal.json();
  const t = tracked[buyerId];
  if (t) {
    t.finalBalance.add(balance);
    t.finalVersion.add(version);
  }
  let expectedVersion = version;
  let expectedAfter = balance;
  let sum = 0;
  let errors = [];
  const paidOrders = new Map();
  let cursor = '';
  for (;;) {
    const res = http.get(`${BASE_URL}/points/history/${buyerId}?limit=100${cursor ? `&cursor=${cursor}` : ''}`, {
      tags: { op: 'read', name: 'GET /points/history/{buyerId}' },
    });
    if (res.status !== 200) {
      errors.push(`history page answered ${res.status}`);
      break;
    }
    const page = res.json();
    for (const e of page.entries) {
      if (e.version !== expectedVersion) errors.push(`version ${e.version} where ${expectedVersion} was expected`);
      if (e.balanceAfter !== expectedAfter) errors.push(`v${e.version}: balanceAfter ${e.balanceAfter}, expected ${expectedAfter}`);
      if (e.kind === 'CHARGE' && !(e.amount > 0)) errors.push(`v${e.version}: charge of ${e.amount}`);
      if (e.kind === 'PAYMENT') {
        if (!(e.amount < 0) || !e.orderId || !e.paymentId) errors.push(`v${e.version}: malformed payment entry`);
        else if (paidOrders.has(e.orderId)) errors.push(`order ${e.orderId} paid twice (v${paidOrders.get(e.orderId).version}, v${e.version})`);
        else paidOrders.set(e.orderId, e);
      }
      if (e.kind === 'REFUND' && (!(e.amount > 0) || !e.orderId || !e.paymentId)) {
        errors.push(`v${e.version}: malformed refund entry`);
      }
      sum += e.amount;
      expectedAfter = e.balanceAfter - e.amount;
      expectedVersion = e.version - 1;
      if (errors.length > 10) break;
    }
    if (!page.nextCursor || errors.length > 10) break;
    cursor = page.nextCursor;
  }
  if (errors.length === 0) {
    if (expectedVersion !== 0) errors.push(`history ends at version ${expectedVersion + 1}, not 1`);
    if (expectedAfter !== 0) errors.push(`oldest entry does not start from 0 (${expectedAfter})`);
    if (sum !== balance) errors.push(`entries sum to ${sum}, balance is ${balance}`);
  }
  // A sample of the paid orders, newest first: PAID (or refunded, in part or whole), this buyer's,
  // of the paid amount.
  let sampled = 0;
  for (const [orderId, e] of paidOrders) {
    if (sampled++ >= ORDER_SAMPLE) break;
    const res = http.get(`${BASE_URL}/orders/${orderId}`, { tags: { op: 'read', name: 'GET /orders/{orderId}' } });
    const o = res.status === 200 ? res.json() : null;
    if (!o || !PAID_STATUSES.includes(o.status) || o.buyerId !== buyerId || o.totalPrice !== -e.amount) {
      errors.push(`order ${orderId}: ${res.status} ${String(res.body).slice(0, 200)} for payment v${e.version}`);
    }
  }
  if (errors.length) console.error(`buyer ${buyerId} ledger: ${errors.slice(0, 10).join('; ')}`);
  consistency(errors.length === 0, 'ledger versions n..1, sums to the balance, each paid order PAID once');
}

// ---------------------------------------------------------------------------------------------
// Thresholds

/**
 * Thresholds on the measured (`load`) requests: p95 and p99 latency, error rate, checks, and
 * the teardown's consistency errors. P95_MS, P99_MS, MAX_ERROR_RATE and MIN_CHECK_RATE override
 * the script's defaults.
 */
export function thresholds({ p95, p99, errorRate = 0.001, checkRate = 0.999, extra = {} }) {
  return Object.assign(
    {
      [`http_req_duration{scenario:${LOAD}}`]: [`p(95)<${envFloat('P95_MS', p95)}`, `p(99)<${envFloat('P99_MS', p99)}`],
      [`http_req_failed{scenario:${LOAD}}`]: [`rate<=${envFloat('MAX_ERROR_RATE', errorRate)}`],
      [`http_reqs{scenario:${LOAD}}`]: ['count>0'],
      checks: [`rate>=${envFloat('MIN_CHECK_RATE', checkRate)}`],
      consistency_errors: ['count==0'],
    },
    extra,
  );
}

/** Options shared by all scripts around their one `load` scenario. */
export function baseOptions(loadScenario, thresholdOptions) {
  return {
    scenarios: { [LOAD]: loadScenario },
    thresholds: thresholds(thresholdOptions),
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
    setupTimeout: '2m',
    teardownTimeout: '10m',
  };
}

// ---------------------------------------------------------------------------------------------
// handleSummary

const RESULTS_DIR = (__ENV.RESULTS_DIR || import.meta.resolve('../results/').replace(/^file:\/\//, '')).replace(/\/?$/, '/');

const metricValues = (data, name) => (data.metrics[name] ? data.metrics[name].values : {});
const count = (data, name) => metricValues(data, name).count || 0;

/** The figures the runner tables and compares, derived from k6's summary data. */
export function derive(data, name) {
  const load = `{scenario:${LOAD}}`;
  const dur = metricValues(data, `http_req_duration${load}`);
  const failed = metricValues(data, `http_req_failed${load}`);
  const checks = metricValues(data, 'checks');
  const reqs = count(data, `http_reqs${load}`);
  const secs = metricValues(data, 'load_seconds').value || data.state.testRunDurationMs / 1000;
  // Totals: the untracked buyers' counters plus every tracked buyer's (see countCharge).
  const perBuyer = (prefix) => Object.keys(data.metrics)
    .filter((m) => new RegExp(`^${prefix}_b\\d+$`).test(m))
    .reduce((sum, m) => sum + count(data, m), 0);
  const acc = {
    charges: count(data, 'accepted_charges') + perBuyer('charges'),
    chargePoints: count(data, 'accepted_charge_points') + perBuyer('charge_points'),
    payments: count(data, 'accepted_payments') + perBuyer('payments'),
    paymentPoints: count(data, 'accepted_payment_points') + perBuyer('payment_points'),
    ordersCreated: count(data, 'orders_created'),
    refunds: count(data, 'accepted_refunds') + perBuyer('refunds'),
    refundPoints: count(data, 'accepted_refund_points') + perBuyer('refund_points'),
    cancels: count(data, 'accepted_cancels'),
  };
  const setup = data.setup_data || {};
  const buyers = {};
  let consistent = true;
  for (const id of Object.keys(setup.start || {})) {
    const start = setup.start[id];
    const c = (m) => count(data, `${m}_b${id}`);
    const expectedBalance = start.balance + c('charge_points') - c('payment_points') + c('refund_points');
    const expectedVersion = start.version + c('charges') + c('payments') + c('refunds');
    const finalBalance = metricValues(data, `final_balance_b${id}`).value;
    const finalVersion = metricValues(data, `final_version_b${id}`).value;
    const ok = finalBalance === expectedBalance && finalVersion === expectedVersion;
    consistent = consistent && ok;
    buyers[id] = {
      startBalance: start.balance, startVersion: start.version,
      acceptedCharges: c('charges'), chargedPoints: c('charge_points'),
      acceptedPayments: c('payments'), paidPoints: c('payment_points'),
      acceptedRefunds: c('refunds'), refundedPoints: c('refund_points'),
      expectedBalance, finalBalance, expectedVersion, finalVersion, ok,
    };
  }
  const thresholdsFailed = [];
  for (const [metric, m] of Object.entries(data.metrics)) {
    for (const [expr, t] of Object.entries(m.thresholds || {})) if (!t.ok) thresholdsFailed.push(`${metric} ${expr}`);
  }
  const consistencyErrors = count(data, 'consistency_errors');
  return {
    name,
    scale: setup.scale !== undefined ? setup.scale : SCALE,
    baseUrl: BASE_URL,
    loadSeconds: secs,
    requests: reqs,
    reqPerSec: secs > 0 ? reqs / secs : 0,
    latencyMs: { avg: dur.avg, med: dur.med, p95: dur['p(95)'], p99: dur['p(99)'], max: dur.max },
    errors: failed.passes || 0,
    checks: { passed: checks.passes || 0, failed: checks.fails || 0 },
    droppedIterations: count(data, 'dropped_iterations'),
    latencyByKindMs: Object.fromEntries(LATENCY_KINDS.filter((k) => data.metrics[`latency_${k}`]).map((k) => {
      const v = metricValues(data, `latency_${k}`);
      return [k, { count: v.count, med: v.med, p95: v['p(95)'], p99: v['p(99)'], max: v.max }];
    })),
    accepted: acc,
    acceptedPerSec: { charges: secs > 0 ? acc.charges / secs : 0, payments: secs > 0 ? acc.payments / secs : 0 },
    buyers,
    // Final balances and versions read in teardown equal start + what the 200s accepted.
    balancesMatchAccepted: consistent,
    consistencyErrors,
    thresholdsFailed,
    ok: consistent && consistencyErrors === 0 && thresholdsFailed.length === 0,
  };
}

const fmt = (n, digits = 1) => (n === undefined || n === null ? '-' : Number(n).toFixed(digits));
const pad = (s, n) => (String(s) + ' '.repeat(n)).slice(0, Math.max(n, String(s).length));

function checkLines(group, indent, out) {
  for (const c of group.checks || []) {
    out.push(`${indent}${c.fails === 0 ? '✓' : '✗'} ${pad(c.name, 78)} ${c.passes} passed, ${c.fails} failed`);
  }
  for (const g of group.groups || []) checkLines(g, indent, out);
}

/** A plain-text summary (the k6 jslib text summary cannot be fetched offline). */
export function textSummary(data, d) {
  const out = [];
  out.push(`█ ${d.name}  SCALE=${d.scale}  ${d.baseUrl}  ${d.ok ? 'PASSED' : 'FAILED'}`);
  out.push('');
  out.push('  thresholds');
  for (const metric of Object.keys(data.metrics).sort()) {
    const m = data.metrics[metric];
    for (const [expr, t] of Object.entries(m.thresholds || {})) {
      const agg = (expr.match(/^\s*([a-z]+(?:\([\d.]+\))?)/) || [])[1];
      const v = m.values[agg];
      const shown = m.type === 'rate' ? `${agg}=${fmt(100 * v, 3)}%` : m.type === 'trend' ? `${agg}=${fmt(v)}ms` : `${agg}=${v}`;
      out.push(`    ${t.ok ? '✓' : '✗'} ${pad(metric, 38)} ${pad(expr, 16)} ${shown}`);
    }
  }
  out.push('');
  out.push(`  checks: ${d.checks.passed} passed, ${d.checks.failed} failed`);
  checkLines(data.root_group, '    ', out);
  out.push('');
  out.push(`  load: ${fmt(d.loadSeconds)} s, ${d.requests} requests, ${fmt(d.reqPerSec)} req/s, ${d.errors} errors, ${d.droppedIterations} dropped iterations`);
  const l = d.latencyMs;
  out.push(`  latency: avg ${fmt(l.avg)} ms, p50 ${fmt(l.med)} ms, p95 ${fmt(l.p95)} ms, p99 ${fmt(l.p99)} ms, max ${fmt(l.max)} ms`);
  for (const [k, v] of Object.entries(d.latencyByKindMs)) {
    out.push(`    ${pad(k.replace(/_(\d+)$/, ' $1'), 17)} p50 ${fmt(v.med)} ms, p95 ${fmt(v.p95)} ms, p99 ${fmt(v.p99)} ms, max ${fmt(v.max)} ms`);
  }
  const a = d.accepted;
  out.push(`  accepted: ${a.charges} charges (${fmt(d.acceptedPerSec.charges)}/s, ${a.chargePoints} points), ` +
    `${a.payments} payments (${fmt(d.acceptedPerSec.payments)}/s, ${a.paymentPoints} points), ${a.ordersCreated} orders created` +
    (a.refunds || a.cancels ? `, ${a.refunds} refunds (${a.refundPoints} points), ${a.cancels} cancels` : ''));
  const ids = Object.keys(d.buyers);
  if (ids.length) {
    out.push(`  balances (teardown) == start + accepted charges - accepted payments + accepted refunds: ${d.balancesMatchAccepted ? 'yes' : 'NO'}`);
    for (const id of ids.slice(0, 20)) {
      const b = d.buyers[id];
      out.push(`    ${b.ok ? '✓' : '✗'} buyer ${pad(id, 6)} ${b.startBalance} + ${b.chargedPoints} - ${b.paidPoints} = ${b.expectedBalance}` +
        `  final ${b.finalBalance}  version ${b.finalVersion} (expected ${b.expectedVersion})`);
    }
    if (ids.length > 20) out.push(`    ... ${ids.length - 20} more in the JSON summary`);
  }
  if (d.consistencyErrors) out.push(`  consistency errors in teardown: ${d.consistencyErrors} (see the log above)`);
  if (d.thresholdsFailed.length) out.push(`  failed thresholds: ${d.thresholdsFailed.join(', ')}`);
  return out.join('\n') + '\n';
}

/** handleSummary for a script: SUMMARY_NAME (or the script's name) names the result files. */
export function summaryHandler(defaultName) {
  return function handleSummary(data) {
    const name = __ENV.SUMMARY_NAME || defaultName;
    const d = derive(data, name);
    const text = textSummary(data, d);
    return {
      stdout: '\n' + text + '\n',
      [`${RESULTS_DIR}${name}.json`]: JSON.stringify(Object.assign({ derived: d }, data), null, 2),
      [`${RESULTS_DIR}${name}.txt`]: text,
    };
  };
}
