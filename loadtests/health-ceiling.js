// The HTTP ceiling: the same closed-loop load as charge-concurrency.js (VUS clients, default 100,
// no think time, for DURATION) against GET /health/live, the cheapest route. What it reaches is
// what the HTTP layer, k6 and the shared cores allow; BENCHMARKS.md divides charge throughput by
// it (loadtests/ceiling runs both alternately).
//   k6 run -e DURATION=20s loadtests/health-ceiling.js
import http from 'k6/http';
import { check } from 'k6';
import { BASE_URL, baseOptions, envInt, scaled, summaryHandler } from './lib/common.js';

export const options = baseOptions(
  { executor: 'constant-vus', vus: envInt('VUS', 100), duration: scaled(__ENV.DURATION || '20s') },
  { p95: 200, p99: 400, errorRate: 0, checkRate: 1 },
);

export default function () {
  const res = http.get(`${BASE_URL}/health/live`, { tags: { name: 'GET /health/live' } });
  check(res, { 'live answers 200': (r) => r.status === 200 });
}

export const handleSummary = summaryHandler('health-ceiling');
