// Serialization probe: a spike (10 VUs for 10 s, to 100 in 10 s, hold 30 s, down in 10 s;
// SCALE scales it) of the whole money lifecycle landing on BUYERS buyers starting at
// FIRST_BUYER: BUYERS=1 is one hot buyer (every request queues on one actor), BUYERS=7 the demo
// buyers. Each iteration, for a random buyer of the set:
//   - with probability CHARGE_SHARE (0.5): charge 1..1000 points, expect 200;
//   - otherwise an order of 1..500 points (201), then one of:
//     - DOUBLE_PAY_SHARE (0.1): paid twice at once: exactly one 200, the other 409
//       order_already_paid;
//     - REFUND_SHARE (0.25): paid (200), then refunded (201s): all at once, a part and the rest,
//       or three racing partial refunds of which exactly those that fit are accepted and the rest
//       answer 422 refund_exceeds_payment, and one more refund past the remainder (422);
//     - CANCEL_SHARE (0.1): cancelled (200 CANCELLED), paying it answers 409 order_cancelled,
//       a second cancel 200 again;
//     - RACE_SHARE (0.1): paid and cancelled at once: exactly one wins (200), the other 409
//       (order_already_paid or order_cancelled);
//     - otherwise paid (200).
// Charges outweigh payments, so no payment can fail for lack of points.
// Teardown walks each buyer's history (versions n..1 without gap or duplicate, balanceAfter chain,
// sum of entries == balance, each paid order once and PAID or refunded); handleSummary and
// loadtests/run check final balance == start + accepted charges - accepted payments + accepted
// refunds per buyer from the counters, and loadtests/run the refunds and cancels in the database.
//   k6 run -e BUYERS=1 -e SCALE=0.1 loadtests/serialization-probe.js
import {
  baseOptions, charge, createAndCancel, createAndDoublePay, createAndPay, createAndRacePayCancel,
  createPayAndRefund, envFloat, envInt, randInt, range, scenario, setupRun, summaryHandler,
  teardownRun, trackBuyers,
} from './lib/common.js';

const BUYERS = envInt('BUYERS', 1);
const FIRST_BUYER = envInt('FIRST_BUYER', 1);
const CHARGE_SHARE = envFloat('CHARGE_SHARE', 0.5);
const DOUBLE_PAY_SHARE = envFloat('DOUBLE_PAY_SHARE', 0.1);
const REFUND_SHARE = envFloat('REFUND_SHARE', 0.25);
const CANCEL_SHARE = envFloat('CANCEL_SHARE', 0.1);
const RACE_SHARE = envFloat('RACE_SHARE', 0.1);
if (BUYERS > 100) throw new Error('the probe tracks each buyer: BUYERS must be at most 100');
if (DOUBLE_PAY_SHARE + REFUND_SHARE + CANCEL_SHARE + RACE_SHARE > 1) {
  throw new Error('DOUBLE_PAY_SHARE + REFUND_SHARE + CANCEL_SHARE + RACE_SHARE must be at most 1');
}
trackBuyers(range(FIRST_BUYER, BUYERS));

// Every answer must be the expected one here: no error and no failed check is tolerated.
export const options = baseOptions(scenario('charge-spike'), { p95: 200, p99: 400, errorRate: 0, checkRate: 1 });

export function setup() {
  return setupRun();
}

export default function () {
  const buyerId = FIRST_BUYER + randInt(0, BUYERS - 1);
  if (Math.random() < CHARGE_SHARE) {
    charge(buyerId, randInt(1, 1000));
    return;
  }
  const total = randInt(1, 500);
  let roll = Math.random();
  for (const [share, flow] of [
    [DOUBLE_PAY_SHARE, createAndDoublePay],
    [REFUND_SHARE, createPayAndRefund],
    [CANCEL_SHARE, createAndCancel],
    [RACE_SHARE, createAndRacePayCancel],
  ]) {
    if (roll < share) {
      flow(buyerId, total);
      return;
    }
    roll -= share;
  }
  createAndPay(buyerId, total);
}

export function teardown(data) {
  teardownRun(data);
}

export const handleSummary = summaryHandler(BUYERS === 1 ? 'probe-hot' : `probe-${BUYERS}`);
