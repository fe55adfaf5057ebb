// Many buyers, once each: ITERATIONS charges (default 1,000,000), each to a buyer never seen
// before (FIRST_BUYER + iteration number), by VUS clients (100) as fast as they can. Every
// request must answer 200. This is the memory test of the load-test issue: every charge starts
// a buyer actor, and idle actors must passivate (BUYER_IDLE_TIMEOUT_S), so the engine's
// resident set stays bounded however many buyers it has served. `loadtests/run` samples the
// engine's process_resident_memory_bytes while it runs (the "peak RSS" column) and once more
// after the idle timeout when RSS_AFTER_IDLE_S is set.
//   loadtests/run distinct-buyers                      1,000,000 buyers
//   ITERATIONS=20000 loadtests/run distinct-buyers     a quick look
import exec from 'k6/execution';
import { baseOptions, charge, envInt, setupRun, summaryHandler, teardownRun } from './lib/common.js';

const ITERATIONS = envInt('ITERATIONS', 1000000);
const FIRST_BUYER = envInt('FIRST_BUYER', 10000000);

export const options = baseOptions(
  {
    executor: 'shared-iterations',
    vus: envInt('VUS', 100),
    iterations: ITERATIONS,
    maxDuration: __ENV.MAX_DURATION || '30m',
  },
  { p95: 200, p99: 400, errorRate: 0, checkRate: 1 },
);

export function setup() {
  return setupRun();
}

export default function () {
  charge(FIRST_BUYER + exec.scenario.iterationInTest, 100);
}

export function teardown(data) {
  teardownRun(data);
}

export const handleSummary = summaryHandler('distinct-buyers');
