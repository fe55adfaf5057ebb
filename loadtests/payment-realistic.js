// Realistic payments: each iteration creates an order for the VU's buyer and pays it, with no
// think time (the ceiling). Every order must answer 201 and every payment 200. Throughput of
// payments is `accepted` payments/s in the summary (counters `payments_bN`, `accepted_payments`).
// VUS (100) clients for DURATION (20s, scaled by SCALE); VU n is buyer FIRST_BUYER + (n-1) % BUYERS
// (BUYERS defaults to VUS), each funded with 10,000,000 points in setup.
//   k6 run -e VUS=100 -e DURATION=20s loadtests/payment-realistic.js
import {
  baseOptions, createAndPay, envInt, randInt, range, scaled, setupRun, summaryHandler, teardownRun,
  trackBuyers,
} from './lib/common.js';

const VUS = envInt('VUS', 100);
const BUYERS = envInt('BUYERS', VUS);
const FIRST_BUYER = envInt('FIRST_BUYER', 100000);
trackBuyers(range(FIRST_BUYER, BUYERS));

export const options = baseOptions(
  { executor: 'constant-vus', vus: VUS, duration: scaled(__ENV.DURATION || '20s') },
  { p95: 200, p99: 400, errorRate: 0, checkRate: 1 },
);

export function setup() {
  return setupRun({ fundBuyers: range(FIRST_BUYER, BUYERS), fund: 10000000 });
}

export default function () {
  createAndPay(FIRST_BUYER + ((__VU - 1) % BUYERS), randInt(1, 100));
}

export function teardown(data) {
  teardownRun(data);
}

export const handleSummary = summaryHandler('payment-realistic');
