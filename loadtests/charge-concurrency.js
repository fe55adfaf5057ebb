// Concurrent charges: VUS clients (default 100) charging as fast as they can for DURATION
// (default 20s, scaled by SCALE), spread over BUYERS buyers from FIRST_BUYER (1 = one hot buyer;
// 7 = the original scripts' buyers 1..7). Every request must answer 200; the summary's req/s is
// durable charges per second. Up to 100 buyers, teardown also walks each one's ledger.
//   k6 run -e BUYERS=1 loadtests/charge-concurrency.js
import {
  baseOptions, charge, envInt, randInt, range, scaled, setupRun, summaryHandler, teardownRun,
  trackBuyers,
} from './lib/common.js';

const BUYERS = envInt('BUYERS', 7);
const FIRST_BUYER = envInt('FIRST_BUYER', 1);
trackBuyers(range(FIRST_BUYER, BUYERS));

export const options = baseOptions(
  { executor: 'constant-vus', vus: envInt('VUS', 100), duration: scaled(__ENV.DURATION || '20s') },
  { p95: 200, p99: 400, errorRate: 0, checkRate: 1 },
);

export function setup() {
  return setupRun();
}

export default function () {
  charge(FIRST_BUYER + randInt(0, BUYERS - 1), randInt(1, 1000));
}

export function teardown(data) {
  teardownRun(data);
}

export const handleSummary = summaryHandler('charge-concurrency');
