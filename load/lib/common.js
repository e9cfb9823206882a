// Shared settings and helpers of the load profiles in load/*.js.
import http from 'k6/http';
import { Counter, Rate } from 'k6/metrics';

export { handleSummaryFor } from './summary.js';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:7071').replace(/\/+$/, '');

// Exported to the summary JSON; load/report.py reads p(50)..p(99) and count.
export const TREND_STATS = ['avg', 'min', 'max', 'p(50)', 'p(90)', 'p(95)', 'p(99)', 'count'];

// Share of responses answered 429, and responses served from the gateway's cache.
const rateLimited = new Rate('rate_limited');
const cacheHits = new Counter('cache_hits');

export function envNumber(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (Number.isFinite(value) && value > 0) return value;
  throw new Error(`${name}=${raw} is not a positive number`);
}

export function envString(name, fallback) {
  return __ENV[name] || fallback;
}

export function headers(extra = {}) {
  const base = { 'Content-Type': 'application/json' };
  if (__ENV.FUNCTION_KEY) base['x-functions-key'] = __ENV.FUNCTION_KEY;
  return Object.assign(base, extra);
}

// Header lookup that ignores case (Go canonicalises "RateLimit-Policy" to "Ratelimit-Policy").
export function header(res, name) {
  const wanted = name.toLowerCase();
  const key = Object.keys(res.headers).find((k) => k.toLowerCase() === wanted);
  return key === undefined ? undefined : res.headers[key];
}

export function record(res) {
  rateLimited.add(res.status === 429);
  if (/^HIT/i.test(header(res, 'X-Cache') || '')) cacheHits.add(1);
  return res;
}

export function postJson(path, payload, extraHeaders = {}) {
  const params = { headers: headers(extraHeaders), tags: { name: `POST ${path}` } };
  return record(http.post(`${BASE_URL}${path}`, JSON.stringify(payload), params));
}

export function getPath(path) {
  const params = { headers: headers(), tags: { name: `GET ${path}` } };
  return record(http.get(`${BASE_URL}${path}`, params));
}

export function infer(backend) {
  return postJson(`/infer/${backend}`, { prompt: `load test ${__VU}-${__ITER}` });
}

export function jsonBody(res) {
  try {
    return res.json();
  } catch (_) {
    return undefined;
  }
}

export function isEchoResult(res) {
  const body = jsonBody(res);
  return res.status === 200 && !!body && String(body.result).startsWith('echo: ');
}

function seconds(duration) {
  const units = { ms: 0.001, s: 1, m: 60, h: 3600 };
  const parts = [...String(duration).matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0) throw new Error(`cannot parse duration ${duration}`);
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * units[unit], 0);
}

function arrival(rate, duration, startTime) {
  return {
    executor: 'constant-arrival-rate',
    rate,
    timeUnit: '1s',
    duration,
    startTime,
    preAllocatedVUs: Math.max(10, Math.ceil(rate / 5)),
    maxVUs: Math.max(50, rate * 2),
  };
}

// A warm-up stage then the measured `main` stage; thresholds use the {scenario:main} tag.
export function warmedUp({ warmupRate, warmupDuration, rate, duration }) {
  const scenarios = {
    warmup: arrival(warmupRate, warmupDuration, '0s'),
    main: arrival(rate, duration, warmupDuration),
  };
  const profile = { target_rps: rate, main_duration_s: seconds(duration), main_scenario: 'main' };
  return { scenarios, profile };
}

export function mainStage(thresholds) {
  return Object.fromEntries(
    Object.entries(thresholds).map(([metric, rules]) => [`${metric}{scenario:main}`, rules]),
  );
}
