// Payments (report scenarios 4-6, realistic variants, ceilings and an open-model spike).
//   FLOW=report     (default for peak/spike/sustained) the original scripts: a random buyer 1..7
//                   pays a random demo order 1..107. Most requests hit another buyer's order
//                   (404 order_not_found) or an already-paid one (409 order_already_paid); the
//                   checks accept exactly those, per order owner, and 200 with the order's total.
//   FLOW=realistic  each iteration creates an order for its buyer (random 1..7, funded with FUND
//                   points in setup) of 1..PRICE_MAX points, then pays it: 201 then 200.
//   PROFILE=peak        50 VUs for 1 min                      (report: 45.8 req/s, p95 157 ms)
//   PROFILE=spike       10 -> 100 -> 10 VUs, 10 s each         (report: 36.7 req/s, p95 137 ms)
//   PROFILE=sustained   50 VUs for 5 min                      (report: 47.7 req/s, p95 109 ms)
//   PROFILE=ceiling     ramp to 100 VUs over 1 min, SLEEP=0 by default: the ceiling
//   PROFILE=spike-open  the payment spike as arrival rates (iterations/s): BASE_RATE (50) ->
//                       PEAK_RATE (500) -> BASE_RATE, 10 s each; PRE_VUS (PEAK_RATE/5), MAX_VUS (500);
//                       dropped_iterations must stay under 1%. Default FLOW=realistic.
// SLEEP: think time per iteration in seconds (1 for the report's profiles, 0 for ceiling and
// spike-open). SCALE scales every duration. BASE_URL (http://127.0.0.1:8080).
//   k6 run -e PROFILE=peak -e FLOW=realistic -e SCALE=0.1 loadtests/payment.js
import { sleep } from 'k6';
import {
  DEMO_BUYERS, DEMO_ORDERS, baseOptions, createAndPay, envFloat, envInt, openScenario, payDemoOrder,
  randInt, range, scenario, setupRun, summaryHandler, teardownRun, trackBuyers,
} from './lib/common.js';

const PROFILE = __ENV.PROFILE || 'peak';
const OPEN = PROFILE === 'spike-open';
const FLOW = __ENV.FLOW || (OPEN ? 'realistic' : 'report');
if (FLOW !== 'report' && FLOW !== 'realistic') throw new Error(`FLOW must be report or realistic, got "${FLOW}"`);
const SLEEP = envFloat('SLEEP', PROFILE === 'ceiling' || OPEN ? 0 : 1);
const BUYERS = envInt('BUYERS', DEMO_BUYERS);
const FIRST_BUYER = envInt('FIRST_BUYER', 1);
const PRICE_MAX = envInt('PRICE_MAX', 1000);
const FUND = envInt('FUND', 10000000);
if (FLOW === 'report' && (FIRST_BUYER !== 1 || BUYERS !== DEMO_BUYERS)) throw new Error('FLOW=report uses the demo buyers 1..7');
trackBuyers(range(FIRST_BUYER, BUYERS));

function loadScenario() {
  if (OPEN) {
    const open = openScenario('payment-spike', envInt('BASE_RATE', 50), envInt('PEAK_RATE', 500), envInt('MAX_VUS', 500));
    const extra = { dropped_iterations: [`count<=${Math.ceil(open.expectedIterations * 0.01)}`] };
    return [open.scenario, { p95: 200, p99: 400, extra }];
  }
  const profile = PROFILE === 'ceiling' ? 'ceiling' : `payment-${PROFILE}`;
  // With sleep(1) the engine idles between requests, but a buyer's first sight of an order is a
  // database read that holds its mailbox: short runs measured p95 36-63 ms, p99 46-72 ms (the
  // old system: p95 157 ms). Without think time the closed loop queues behind the group commit
  // like the charges do.
  return [scenario(profile), SLEEP > 0 ? { p95: 150, p99: 300 } : { p95: 200, p99: 400 }];
}

const [loadScn, thresholdOptions] = loadScenario();
export const options = baseOptions(loadScn, thresholdOptions);

export function setup() {
  return setupRun(FLOW === 'realistic' ? { fundBuyers: range(FIRST_BUYER, BUYERS), fund: FUND } : {});
}

export default function () {
  const buyerId = FIRST_BUYER + randInt(0, BUYERS - 1);
  if (FLOW === 'report') payDemoOrder(buyerId, randInt(1, DEMO_ORDERS));
  else createAndPay(buyerId, randInt(1, PRICE_MAX));
  if (SLEEP > 0) sleep(SLEEP);
}

export function teardown(data) {
  teardownRun(data);
}

export const handleSummary = summaryHandler(
  PROFILE === 'ceiling' ? `payment-${FLOW === 'report' ? 'report-' : ''}ceiling`
    : `payment-${FLOW === 'realistic' ? 'realistic-' : ''}${PROFILE}`,
);
