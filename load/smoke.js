// CI smoke: 30 s at RATE (10) iterations/s, each hitting /healthz and both /infer routes.
import { check } from 'k6';
import {
  envNumber, envString, getPath, handleSummaryFor, infer, isEchoResult, jsonBody, TREND_STATS,
} from './lib/common.js';

const rate = envNumber('RATE', 10);
const duration = envString('DURATION', '30s');

export const options = {
  scenarios: {
    smoke: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration,
      preAllocatedVUs: 10,
      maxVUs: 50,
      gracefulStop: '5s',
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    http_req_duration: ['p(95)<300', 'p(99)<500'],
    dropped_iterations: ['count==0'],
  },
};

function healthy(res) {
  const body = jsonBody(res);
  return res.status === 200 && typeof body === 'object' && body !== null;
}

function hasModel(res) {
  const body = jsonBody(res);
  return !!body && typeof body.model === 'string' && typeof body.latency_ms === 'number';
}

export default function () {
  check(getPath('/healthz'), { 'healthz answers 200 JSON': healthy });
  for (const backend of ['python', 'node']) {
    check(infer(backend), {
      [`infer/${backend} answers 200 echo`]: isEchoResult,
      [`infer/${backend} reports model and latency`]: hasModel,
    });
  }
}

export const handleSummary = handleSummaryFor('smoke', { target_rps: rate * 3 });
