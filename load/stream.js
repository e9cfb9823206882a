// Streaming chat completions (SSE): time to first byte (http_req_waiting) and total time.
import { check } from 'k6';
import {
  envNumber, envString, handleSummaryFor, header, postJson, TREND_STATS,
} from './lib/common.js';

const rate = envNumber('RATE', 20);
const duration = envString('DURATION', '1m');

export const options = {
  scenarios: {
    stream: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration,
      preAllocatedVUs: Math.max(10, rate),
      maxVUs: Math.max(50, rate * 5),
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    http_req_failed: ['rate<0.001'],
    checks: ['rate==1'],
    http_req_waiting: ['p(95)<300'], // time to first byte
    http_req_duration: ['p(95)<2000'], // until the stream ends
  },
};

const payload = {
  model: envString('MODEL', 'sim-small'),
  stream: true,
  messages: [
    { role: 'system', content: 'You are a load test.' },
    { role: 'user', content: 'Say hello in five words.' },
  ],
};

function isEventStream(res) {
  return (header(res, 'Content-Type') || '').startsWith('text/event-stream');
}

export default function () {
  const res = postJson('/v1/chat/completions', payload, { Accept: 'text/event-stream' });
  check(res, {
    'stream answers 200': (r) => r.status === 200,
    'stream is text/event-stream': isEventStream,
    'stream ends with data: [DONE]': (r) => String(r.body).includes('data: [DONE]'),
  });
}

export const handleSummary = handleSummaryFor('stream', { target_rps: rate });
