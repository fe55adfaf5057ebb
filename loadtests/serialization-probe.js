// Serialization probe: a spike (10 VUs for 10 s, to 100 in 10 s, hold 30 s, down in 10 s;
// SCALE scales it) of mixed charges and payments landing on BUYERS buyers starting at
// FIRST_BUYER: BUYERS=1 is one hot buyer (every request queues on one actor), BUYERS=7 the demo
// buyers. Each iteration, for a random buyer of the set:
//   - with probability CHARGE_SHARE (0.5): charge 1..1000 points, expect 200;
//   - otherwise create an order of 1..500 points (201) and pay it (200); DOUBLE_PAY_SHARE (0.1)
//     of these pay it twice at once instead: exactly one 200, the other 409 order_already_paid.
// Charges outweigh payments, so no payment can fail for lack of points.
// Teardown walks each buyer's history (versions n..1 without gap or duplicate, balanceAfter chain,
// sum of entries == balance, each paid order once and PAID); handleSummary and loadtests/run check
// final balance == start + accepted charges - accepted payments per buyer from the counters.
//   k6 run -e BUYERS=1 -e SCALE=0.1 loadtests/serialization-probe.js
import {
  baseOptions, charge, createAndDoublePay, createAndPay, envFloat, envInt, randInt, range, scenario,
  setupRun, summaryHandler, teardownRun, trackBuyers,
} from './lib/common.js';

const BUYERS = envInt('BUYERS', 1);
const FIRST_BUYER = envInt('FIRST_BUYER', 1);
const CHARGE_SHARE = envFloat('CHARGE_SHARE', 0.5);
const DOUBLE_PAY_SHARE = envFloat('DOUBLE_PAY_SHARE', 0.1);
if (BUYERS > 100) throw new Error('the probe tracks each buyer: BUYERS must be at most 100');
trackBuyers(range(FIRST_BUYER, BUYERS));

// Every answer must be the expected one here: no error and no failed check is tolerated.
export const options = baseOptions(scenario('charge-spike'), { p95: 200, p99: 400, errorRate: 0, checkRate: 1 });

export function setup() {
  return setupRun();
}

export default function () {
  const buyerId = FIRST_BUYER + randInt(0, BUYERS - 1);
  if (Math.random() < CHARGE_SHARE) charge(buyerId, randInt(1, 1000));
  else if (Math.random() < DOUBLE_PAY_SHARE) createAndDoublePay(buyerId, randInt(1, 500));
  else createAndPay(buyerId, randInt(1, 500));
}

export function teardown(data) {
  teardownRun(data);
}

export const handleSummary = summaryHandler(BUYERS === 1 ? 'probe-hot' : `probe-${BUYERS}`);
