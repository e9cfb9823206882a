// Rate limiting: drive POST /infer/python above the limit and expect a mix of 200 and 429.
// Every 429 must carry Retry-After, the RateLimit headers and a JSON error body with error.code.
import http from 'k6/http';
import { check } from 'k6';
import {
  envNumber, envString, handleSummaryFor, header, infer, isEchoResult, jsonBody,
  TREND_STATS,
} from './lib/common.js';

const rate = envNumber('RATE', 300);
const duration = envString('DURATION', '30s');

// 429 is an expected answer here: http_req_failed then counts every other non-2xx status.
http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 429));

const LIMIT_HEADERS = [
  'Retry-After', 'RateLimit-Policy', 'RateLimit', 'RateLimit-Scope',
  'X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset',
];

export const options = {
  scenarios: {
    over_limit: {
      executor: 'constant-arrival-rate',
      rate,
      timeUnit: '1s',
      duration,
      preAllocatedVUs: Math.ceil(rate / 5),
      maxVUs: rate * 2,
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    http_req_failed: ['rate==0'],
    checks: ['rate==1'],
    rate_limited: ['rate>0', 'rate<1'],
  },
};

function limitHeadersPresent(res) {
  return LIMIT_HEADERS.every((name) => header(res, name) !== undefined);
}

function retryAfterIsSeconds(res) {
  return /^\d+$/.test(header(res, 'Retry-After') || '');
}

function errorCode(res) {
  const body = jsonBody(res);
  return !!body && !!body.error && typeof body.error.code === 'string' && body.error.code !== '';
}

export default function () {
  const res = infer('python');
  if (res.status === 429) {
    check(res, {
      '429 carries Retry-After and RateLimit headers': limitHeadersPresent,
      '429 Retry-After is delay-seconds': retryAfterIsSeconds,
      '429 body has error.code': errorCode,
    });
  } else {
    check(res, { 'non-429 answers 200 echo': isEchoResult });
  }
}

export const handleSummary = handleSummaryFor('ratelimit', { target_rps: rate });
