// Realistic payments: each iteration creates an order for the VU's buyer and pays it, with no
// think time (the ceiling). Every pay must answer 200. Throughput of payments is the
// `payments` counter rate.
//   k6 run -e VUS=100 -e DURATION=20s loadtests/payment-realistic.js
import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const VUS = parseInt(__ENV.VUS || '100', 10);
const BUYERS = parseInt(__ENV.BUYERS || String(VUS), 10);
const FIRST_BUYER = parseInt(__ENV.FIRST_BUYER || '100000', 10);
const JSON_HEADERS = { headers: { 'Content-Type': 'application/json' } };
const payments = new Counter('payments');

export const options = {
  scenarios: {
    pay: { executor: 'constant-vus', vus: VUS, duration: __ENV.DURATION || '20s' },
  },
  thresholds: { checks: ['rate==1.0'], http_req_failed: ['rate==0'] },
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
};

export function setup() {
  for (let b = 0; b < BUYERS; b++) {
    const res = http.post(`${BASE_URL}/points/${FIRST_BUYER + b}?point=10000000`);
    if (res.status !== 200) fail(`funding buyer ${FIRST_BUYER + b}: ${res.status} ${res.body}`);
  }
}

export default function () {
  const buyerId = FIRST_BUYER + ((__VU - 1) % BUYERS);
  const totalPrice = 1 + Math.floor(Math.random() * 100);
  const created = http.post(`${BASE_URL}/orders`, JSON.stringify({ buyerId, totalPrice }), JSON_HEADERS);
  if (!check(created, { 'order created 201': (r) => r.status === 201 })) return;
  const orderId = created.json('orderId');
  const paid = http.post(`${BASE_URL}/orders/payment/kafka`, JSON.stringify({ buyerId, orderId }), JSON_HEADERS);
  if (check(paid, { 'payment answered 200': (r) => r.status === 200 })) payments.add(1);
}
