// Concurrent charges: VUS clients (default 100) charging as fast as they can for DURATION,
// spread over BUYERS buyers (1 = one hot buyer; 7 = the original scripts' buyers 1..7).
// Every request must answer 200; the summary's http_reqs rate is durable charges per second.
//   k6 run -e BUYERS=1 loadtests/charge-concurrency.js
import http from 'k6/http';
import { check } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const BUYERS = parseInt(__ENV.BUYERS || '7', 10);
const FIRST_BUYER = parseInt(__ENV.FIRST_BUYER || '1', 10);

export const options = {
  scenarios: {
    charge: {
      executor: 'constant-vus',
      vus: parseInt(__ENV.VUS || '100', 10),
      duration: __ENV.DURATION || '20s',
    },
  },
  thresholds: {
    checks: ['rate==1.0'],
    http_req_failed: ['rate==0'],
  },
  summaryTrendStats: ['avg', 'med', 'p(95)', 'p(99)', 'max'],
};

export default function () {
  const buyer = FIRST_BUYER + Math.floor(Math.random() * BUYERS);
  const point = 1 + Math.floor(Math.random() * 1000);
  const res = http.post(`${BASE_URL}/points/${buyer}?point=${point}`);
  check(res, { 'charge answered 200': (r) => r.status === 200 });
}
