// The prototype's cache test: 40 virtual users for 20 s on GET /slow (the backend answers after
// 120 ms), once per backend: scenario `python` on /slow/python, then `node` on /slow/node.
// Reports per backend the hit ratio (X-Cache: HIT), throughput and p95 (load/report.py).
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { envNumber, envString, getPath, handleSummaryFor, header, TREND_STATS } from './lib/common.js';

const vus = envNumber('VUS', 40);
const duration = envString('DURATION', '20s');
const seconds = Number(/^(\d+(?:\.\d+)?)s$/.exec(duration)?.[1]);
if (!Number.isFinite(seconds)) throw new Error(`DURATION=${duration}: give seconds, e.g. 20s`);
const BACKENDS = envString('BACKENDS', 'python,node').split(',');
const MIN_HIT_RATIO = envNumber('MIN_HIT_RATIO', 0.95);

const hitRatio = new Rate('cache_hit_ratio');

const scenarios = {};
const thresholds = { checks: ['rate==1'] };
BACKENDS.forEach((backend, index) => {
  scenarios[backend] = {
    executor: 'constant-vus',
    vus,
    duration,
    startTime: `${index * (seconds + 1)}s`,
    gracefulStop: '5s',
    exec: 'slow',
    env: { BACKEND: backend },
  };
  thresholds[`cache_hit_ratio{scenario:${backend}}`] = [`rate>=${MIN_HIT_RATIO}`];
  thresholds[`http_req_failed{scenario:${backend}}`] = ['rate<0.001'];
  thresholds[`http_req_duration{scenario:${backend}}`] = ['p(95)<500'];
});

export const options = { scenarios, thresholds, summaryTrendStats: TREND_STATS };

export function slow() {
  const res = getPath(`/slow/${__ENV.BACKEND}`);
  hitRatio.add(/^HIT/i.test(header(res, 'X-Cache') || ''));
  check(res, {
    'slow answers 200': (r) => r.status === 200,
    'slow is marked HIT or MISS': (r) => /^(HIT|MISS)$/.test(header(r, 'X-Cache') || ''),
  });
}

export const handleSummary = handleSummaryFor('cache', {
  cache_scenarios: BACKENDS, scenario_duration_s: seconds, vus,
});
