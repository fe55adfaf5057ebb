// Fault drill 4 (tests/api/drills/overload.rs runs it; see RELIABILITY.md): charges random
// buyers FIRST_BUYER..FIRST_BUYER+BUYERS-1, 1..1000 points each.
//   MODE=capacity  VUS closed-loop clients (100) for DURATION: what the engine acknowledges per
//                  second, the capacity the overload is a multiple of;
//   MODE=overload  RATE requests per second for DURATION, open model (constant-arrival-rate): the
//                  requests keep arriving whatever the answers, up to MAX_VUS at once (beyond
//                  it k6 drops iterations and counts them).
// Writes SUMMARY_FILE (JSON): answers by status, acknowledged points, latencies of accepted
// (200) and shed (503) requests, failed checks, dropped iterations. Every 503 must be an
// `overloaded` problem+json with Retry-After; anything but 200 or 503 is a failed check.
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const MODE = __ENV.MODE || 'capacity';
const DURATION = __ENV.DURATION || '5s';
const BUYERS = parseInt(__ENV.BUYERS || '100', 10);
const FIRST_BUYER = parseInt(__ENV.FIRST_BUYER || '1', 10);

const accepted = new Trend('accepted_ms', true);
const shed = new Trend('shed_ms', true);
const ackedPoints = new Counter('acked_points');
const ackedCharges = new Counter('acked_charges');
const shedCount = new Counter('shed_requests');
const otherCount = new Counter('other_answers');

const scenario = MODE === 'overload'
  ? {
    executor: 'constant-arrival-rate',
    rate: parseInt(__ENV.RATE || '1000', 10),
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: parseInt(__ENV.PRE_VUS || '500', 10),
    maxVUs: parseInt(__ENV.MAX_VUS || '2000', 10),
  }
  : { executor: 'constant-vus', vus: parseInt(__ENV.VUS || '100', 10), duration: DURATION };

export const options = {
  scenarios: { load: scenario },
  // The drill asserts on the summary; k6 itself must not fail the run on latency.
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(95)', 'p(99)'],
  discardResponseBodies: false,
  noConnectionReuse: false,
};

export default function () {
  const buyer = FIRST_BUYER + Math.floor(Math.random() * BUYERS);
  const points = 1 + Math.floor(Math.random() * 1000);
  const res = http.post(`${BASE_URL}/points/${buyer}?point=${points}`, null, {
    tags: { name: 'POST /points/{buyerId}' },
    timeout: '30s',
  });
  if (res.status === 200) {
    accepted.add(res.timings.duration);
    ackedCharges.add(1);
    ackedPoints.add(points);
    check(res, { 'charged the amount asked': (r) => r.json('amount') === points });
  } else if (res.status === 503) {
    shed.add(res.timings.duration);
    shedCount.add(1);
    check(res, {
      '503 is overloaded problem+json with Retry-After': (r) =>
        (r.headers['Content-Type'] || '').startsWith('application/problem+json') &&
        r.headers['Retry-After'] !== undefined &&
        r.json('code') === 'overloaded',
    });
  } else {
    otherCount.add(1);
    check(res, { 'answered 200 or 503': () => false });
  }
}

const value = (data, metric, stat) => (data.metrics[metric] ? data.metrics[metric].values[stat] || 0 : 0);

export function handleSummary(data) {
  const out = {
    mode: MODE,
    durationMs: data.state.testRunDurationMs,
    requests: value(data, 'http_reqs', 'count'),
    ackedCharges: value(data, 'acked_charges', 'count'),
    ackedPoints: value(data, 'acked_points', 'count'),
    shed: value(data, 'shed_requests', 'count'),
    other: value(data, 'other_answers', 'count'),
    failedChecks: value(data, 'checks', 'fails'),
    droppedIterations: value(data, 'dropped_iterations', 'count'),
    acceptedP50Ms: value(data, 'accepted_ms', 'med'),
    acceptedP99Ms: value(data, 'accepted_ms', 'p(99)'),
    acceptedMaxMs: value(data, 'accepted_ms', 'max'),
    shedP50Ms: value(data, 'shed_ms', 'med'),
    shedP99Ms: value(data, 'shed_ms', 'p(99)'),
  };
  return { [__ENV.SUMMARY_FILE || 'overload-summary.json']: JSON.stringify(out, null, 2) };
}
