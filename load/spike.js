// Spike: BASE_RATE (50) RPS, a jump to SPIKE_RATE (400) RPS held for SPIKE_DURATION, then back.
import { check } from 'k6';
import {
  envNumber, envString, handleSummaryFor, infer, isEchoResult, TREND_STATS,
} from './lib/common.js';

const base = envNumber('BASE_RATE', 50);
const spike = envNumber('SPIKE_RATE', 400);
const hold = envString('SPIKE_DURATION', '30s');

export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: base,
      timeUnit: '1s',
      preAllocatedVUs: Math.ceil(spike / 5),
      maxVUs: spike * 2,
      stages: [
        { target: base, duration: '20s' },
        { target: spike, duration: '5s' },
        { target: spike, duration: hold },
        { target: base, duration: '5s' },
        { target: base, duration: '30s' },
      ],
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    http_req_failed: ['rate<0.01'],
    http_req_duration: ['p(95)<500', 'p(99)<1000'],
  },
};

export default function () {
  check(infer('python'), { 'infer/python answers 200 echo': isEchoResult });
}

export const handleSummary = handleSummaryFor('spike');
