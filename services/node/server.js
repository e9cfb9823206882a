'use strict';
// Simulated inference backend: /infer echo plus deterministic OpenAI-compatible endpoints.
// Run: node server.js (PORT default 8002, HOST default 127.0.0.1). services/python/app.py
// implements the same contract, including token accounting and embedding vectors, and documents
// it (env vars, token estimate, x-sim-error headers); keep the two in step.

const crypto = require('node:crypto');
const { setTimeout: sleep } = require('node:timers/promises');
const express = require('express');

const SERVICE = 'node-sim';
const EMBEDDING_DIMS = 16;
const MODEL_CREATED = 1_700_000_000;

// --- settings: validated up front so a bad value stops the process with its name -------------

function fail(message) {
  console.error(message);
  process.exit(1);
}

function envInt(name, fallback, low, high) {
  const raw = process.env[name] ?? String(fallback);
  const value = /^\s*[+-]?\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!(value >= low && value <= high)) {
    fail(`invalid env ${name}=${JSON.stringify(raw)}: expected an integer in [${low}, ${high}]`);
  }
  return value;
}

function loadSettings() {
  const modelName = process.env.MODEL_NAME ?? 'sim-node';
  if (!modelName.trim()) fail('invalid env MODEL_NAME: must not be empty');
  const latencyMinMs = envInt('LATENCY_MIN_MS', 30, 0, 600_000);
  const latencyMaxMs = envInt('LATENCY_MAX_MS', 50, 0, 600_000);
  if (latencyMaxMs < latencyMinMs) {
    fail(`invalid env LATENCY_MAX_MS=${latencyMaxMs}: below LATENCY_MIN_MS=${latencyMinMs}`);
  }
  const rawRate = process.env.ERROR_RATE ?? '0';
  const errorRate = rawRate.trim() === '' ? NaN : Number(rawRate);
  if (!(errorRate >= 0 && errorRate <= 1)) {
    fail(`invalid env ERROR_RATE=${JSON.stringify(rawRate)}: expected a number in [0, 1]`);
  }
  return {
    host: process.env.HOST ?? '127.0.0.1',
    port: envInt('PORT', 8002, 1, 65535),
    modelName,
    latencyMinMs,
    latencyMaxMs,
    errorRate,
    ttftMs: envInt('TTFT_MS', 200, 0, 600_000),
    tokenMs: envInt('TOKEN_MS', 20, 0, 600_000),
  };
}

const SETTINGS = loadSettings();
// Tokens in an answer when max_tokens allows them (load/bench_streams.py holds streams 20 s).
const ANSWER_TOKENS = envInt('ANSWER_TOKENS', 16, 1, 1_000_000);

// --- errors ------------------------------------------------------------------------------------

class BadRequest extends Error {}

function sendError(res, status, message, type, code, headers = {}) {
  res.status(status).set(headers).json({ error: { message, type, code } });
}

function sendBadRequest(res, message) {
  sendError(res, 400, message, 'invalid_request_error', 'bad_request');
}

function sendInferBadRequest(res, message) {
  res.status(400).json({ error: { code: 'bad_request', message } });
}

// Failures already served per x-sim-error-key. Grows with distinct keys; fine for a test double.
const injectedFailures = new Map();

// Honours x-sim-error (429 or 5xx), optionally only for the first N requests of a key.
function injectErrors(req, res, next) {
  const wanted = req.get('x-sim-error');
  if (wanted === undefined) return next();
  const status = /^\d+$/.test(wanted) ? Number(wanted) : NaN;
  if (!(status === 429 || (status >= 500 && status <= 599))) {
    return sendBadRequest(res, 'x-sim-error must be 429 or a 5xx status');
  }
  const times = req.get('x-sim-error-times');
  if (times !== undefined) {
    const key = req.get('x-sim-error-key');
    if (!/^\d+$/.test(times) || !key) {
      return sendBadRequest(res,
        'x-sim-error-times needs a non-negative integer and x-sim-error-key');
    }
    const failed = injectedFailures.get(key) ?? 0;
    if (failed >= Number(times)) return next();
    injectedFailures.set(key, failed + 1);
  }
  if (status === 429) {
    return sendError(res, 429, 'Simulated rate limit', 'requests', 'rate_limit_exceeded',
      { 'Retry-After': '1' });
  }
  return sendError(res, status, 'Simulated server error', 'server_error', 'server_error',
    { 'Retry-After': '1' });
}

// --- request parsing ---------------------------------------------------------------------------

const isObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);

function jsonObject(req) {
  if (!isObject(req.body)) throw new BadRequest('body must be a JSON object');
  return req.body;
}

function maxTokensOf(body) {
  for (const field of ['max_completion_tokens', 'max_tokens']) {
    const value = body[field];
    if (value === undefined || value === null) continue;
    if (!Number.isInteger(value) || value < 1) {
      throw new BadRequest(`${field} must be a positive integer`);
    }
    return value;
  }
  return ANSWER_TOKENS;
}

function modelOf(body) {
  const model = body.model ?? SETTINGS.modelName;
  if (typeof model !== 'string') throw new BadRequest('model must be a string');
  return model;
}

// What a completion request asks for, besides its prompt.
function generationOf(body) {
  const stream = body.stream ?? false;
  const options = body.stream_options ?? {};
  if (typeof stream !== 'boolean' || !isObject(options)) {
    throw new BadRequest('stream must be a boolean and stream_options an object');
  }
  return {
    model: modelOf(body),
    limit: maxTokensOf(body),
    stream,
    includeUsage: options.include_usage === true,
  };
}

// [role, text] of a chat message; content may be a string, text parts or null.
function messageText(message) {
  if (!isObject(message) || typeof message.role !== 'string') {
    throw new BadRequest('each message must be an object with a string role');
  }
  const content = message.content ?? null;
  if (content === null || typeof content === 'string') return [message.role, content ?? ''];
  if (Array.isArray(content) && content.every(isObject)) {
    const texts = content.filter((part) => part.type === 'text').map((part) => part.text);
    if (texts.every((text) => typeof text === 'string')) return [message.role, texts.join('')];
  }
  throw new BadRequest('message content must be a string, a list of text parts or null');
}

// A string or a non-empty list of strings, as a list.
function textList(value, field) {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.length && value.every((item) => typeof item === 'string')) {
    return value;
  }
  throw new BadRequest(`${field} must be a string or a non-empty list of strings`);
}

// --- deterministic generation ------------------------------------------------------------------

function estimateTokens(text) {
  let codePoints = 0; // Python's len() counts code points, not UTF-16 units
  for (const _ of text) codePoints += 1;
  return Math.ceil(codePoints / 4);
}

// Stream pieces of the answer (joined they give its text) and its finish_reason.
function answerPieces(prompt, limit) {
  const words = `echo: ${prompt}`.split(/\s+/).filter(Boolean);
  const count = Math.min(limit, ANSWER_TOKENS);
  const pieces = [];
  for (let i = 0; i < count; i += 1) {
    const word = words[i % words.length];
    pieces.push(i === 0 ? word : ` ${word}`);
  }
  return [pieces, limit < ANSWER_TOKENS ? 'length' : 'stop'];
}

// A unit vector from the SHA-256 of the text: 16 big-endian uint16 mapped to [-1, 1].
function embedding(text) {
  const digest = crypto.createHash('sha256').update(text, 'utf8').digest();
  const raw = [];
  for (let i = 0; i < EMBEDDING_DIMS; i += 1) raw.push(digest.readUInt16BE(i * 2) / 32767.5 - 1);
  const norm = Math.sqrt(raw.reduce((sum, x) => sum + x * x, 0)) || 1;
  return raw.map((x) => x / norm);
}

function base64Floats(vector) {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((x, i) => bytes.writeFloatLE(x, i * 4));
  return bytes.toString('base64');
}

function usage(promptTokens, completionTokens) {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

// When the last token is ready: TTFT for the first token, TOKEN_MS for each further one.
function generationMs(tokens) {
  return SETTINGS.ttftMs + SETTINGS.tokenMs * Math.max(tokens - 1, 0);
}

const sse = (payload) => `data: ${JSON.stringify(payload)}\n\n`;

// Held streams (app.py's text): x-sim-hold-key K holds a stream after its first token event
// until POST /sim/release/K or HOLD_MS; the key is registered with the request.
const HOLD_MS = 30_000;
const MAX_HOLDS = 1000;
const holds = new Map(); // key -> the release function of the held stream's promise

function holdOf(req) {
  const key = req.get('x-sim-hold-key');
  if (!key || key.length > 64 || holds.has(key) || holds.size >= MAX_HOLDS) return null;
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  holds.set(key, release);
  return { key, released };
}

async function waitForRelease(hold) {
  let timer;
  const timeout = new Promise((resolve) => { timer = setTimeout(resolve, HOLD_MS); });
  await Promise.race([hold.released, timeout]);
  clearTimeout(timer);
}

// One event per token choice on the TTFT/TOKEN_MS schedule, then finish, usage, [DONE]; with
// `hold`, the events after the first wait for its release.
async function streamEvents(res, head, choices, final, finalUsage, hold = null) {
  let closed = false;
  res.on('close', () => {
    closed = true;
    if (hold) holds.delete(hold.key);
  });
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  let start = performance.now();
  // With include_usage OpenAI sends "usage": null on every chunk but the last one.
  const extra = finalUsage ? { usage: null } : {};
  for (const [index, choice] of choices.entries()) {
    const delay = start + generationMs(index + 1) - performance.now();
    if (delay > 0) await sleep(delay);
    if (closed) return;
    res.write(sse({ ...head, choices: [choice], ...extra }));
    if (index === 0 && hold) {
      await waitForRelease(hold);
      if (closed) return;
      start = performance.now() - generationMs(1);
    }
  }
  res.write(sse({ ...head, choices: [final], ...extra }));
  if (finalUsage) res.write(sse({ ...head, choices: [], usage: finalUsage }));
  res.end('data: [DONE]\n\n');
  if (hold) holds.delete(hold.key);
}

function newId(prefix) {
  return `${prefix}-${crypto.randomUUID().replaceAll('-', '')}`;
}

const now = () => Math.floor(Date.now() / 1000);

// --- routes ------------------------------------------------------------------------------------

const app = express();
app.disable('x-powered-by');
app.disable('etag');
// Any content type is read as JSON, and any JSON value accepted, so handlers give the 400s.
const parseJson = express.json({ type: () => true, strict: false, limit: '10mb' });

app.get('/healthz', (req, res) => {
  res.json({ ok: true, service: SERVICE, model: SETTINGS.modelName });
});

// The prototype's cache demo: the same JSON every time, after SLOW_MS (GET, and HEAD by Express).
const SLOW_MS = 120;
app.get('/slow', injectErrors, async (req, res) => {
  await sleep(SLOW_MS);
  res.json({ ok: true, service: SERVICE, slow_ms: SLOW_MS });
});

app.post('/sim/release/:key', (req, res) => {
  const release = holds.get(req.params.key);
  if (release) release();
  res.json({ held: release !== undefined });
});

app.post('/infer', injectErrors, parseJson, async (req, res) => {
  if (!isObject(req.body)) return sendInferBadRequest(res, 'body must be a JSON object');
  const { prompt } = req.body;
  if (typeof prompt !== 'string') return sendInferBadRequest(res, 'prompt must be a string');
  const { latencyMinMs, latencyMaxMs } = SETTINGS;
  const latencyMs = latencyMinMs + Math.floor(Math.random() * (latencyMaxMs - latencyMinMs + 1));
  if (latencyMs) await sleep(latencyMs);
  if (Math.random() < SETTINGS.errorRate) {
    const error = { code: 'simulated_error', message: 'simulated failure' };
    return res.status(500).json({ error });
  }
  return res.json({ result: `echo: ${prompt}`, latency_ms: latencyMs, model: SETTINGS.modelName });
});

app.get('/v1/models', injectErrors, (req, res) => {
  res.json({
    object: 'list',
    data: [{ id: SETTINGS.modelName, object: 'model', created: MODEL_CREATED, owned_by: 'sim' }],
  });
});

app.post('/v1/chat/completions', injectErrors, parseJson, async (req, res) => {
  let parsed;
  let gen;
  try {
    const body = jsonObject(req);
    if (!Array.isArray(body.messages) || !body.messages.length) {
      throw new BadRequest('messages must be a non-empty list');
    }
    parsed = body.messages.map(messageText);
    gen = generationOf(body);
  } catch (err) {
    if (err instanceof BadRequest) return sendBadRequest(res, err.message);
    throw err;
  }
  const lastUser = parsed.findLast(([role]) => role === 'user') ?? parsed.at(-1);
  const [pieces, finishReason] = answerPieces(lastUser[1], gen.limit);
  const tokens = usage(parsed.reduce((sum, [, text]) => sum + estimateTokens(text) + 4, 0),
    pieces.length);
  const head = {
    id: newId('chatcmpl'),
    object: gen.stream ? 'chat.completion.chunk' : 'chat.completion',
    created: now(),
    model: gen.model,
  };
  if (gen.stream) {
    const choices = pieces.map((piece, i) => ({
      index: 0,
      delta: i === 0 ? { role: 'assistant', content: piece } : { content: piece },
      logprobs: null,
      finish_reason: null,
    }));
    const final = { index: 0, delta: {}, logprobs: null, finish_reason: finishReason };
    return streamEvents(res, head, choices, final, gen.includeUsage ? tokens : null, holdOf(req));
  }
  await sleep(generationMs(pieces.length));
  const message = { role: 'assistant', content: pieces.join('') };
  return res.json({
    ...head,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason }],
    usage: tokens,
  });
});

app.post('/v1/completions', injectErrors, parseJson, async (req, res) => {
  let prompt;
  let gen;
  try {
    const prompts = textList(jsonObject(req).prompt, 'prompt');
    if (prompts.length !== 1) throw new BadRequest('prompt lists must hold exactly one string');
    [prompt] = prompts;
    gen = generationOf(req.body);
  } catch (err) {
    if (err instanceof BadRequest) return sendBadRequest(res, err.message);
    throw err;
  }
  const [pieces, finishReason] = answerPieces(prompt, gen.limit);
  const tokens = usage(estimateTokens(prompt), pieces.length);
  const head = { id: newId('cmpl'), object: 'text_completion', created: now(), model: gen.model };
  if (gen.stream) {
    const choices = pieces.map((piece) => (
      { index: 0, text: piece, logprobs: null, finish_reason: null }));
    const final = { index: 0, text: '', logprobs: null, finish_reason: finishReason };
    return streamEvents(res, head, choices, final, gen.includeUsage ? tokens : null);
  }
  await sleep(generationMs(pieces.length));
  return res.json({
    ...head,
    choices: [{ index: 0, text: pieces.join(''), logprobs: null, finish_reason: finishReason }],
    usage: tokens,
  });
});

app.post('/v1/embeddings', injectErrors, parseJson, (req, res) => {
  let texts;
  let model;
  let encoding;
  try {
    texts = textList(jsonObject(req).input, 'input');
    model = modelOf(req.body);
    encoding = req.body.encoding_format ?? 'float';
    if (encoding !== 'float' && encoding !== 'base64') {
      throw new BadRequest("encoding_format must be 'float' or 'base64'");
    }
  } catch (err) {
    if (err instanceof BadRequest) return sendBadRequest(res, err.message);
    throw err;
  }
  const data = texts.map((text, index) => {
    const vector = embedding(text);
    // base64 is what the official OpenAI clients request by default.
    return {
      object: 'embedding',
      index,
      embedding: encoding === 'base64' ? base64Floats(vector) : vector,
    };
  });
  const promptTokens = texts.reduce((sum, text) => sum + estimateTokens(text), 0);
  return res.json({
    object: 'list',
    data,
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
});

// The agents' APIs (Responses, Messages), in a module of their own (agents.js).
require('./agents').register(app, {
  BadRequest, injectErrors, parseJson, jsonObject, estimateTokens, answerPieces, generationMs,
  modelOf, sendError, sendBadRequest, sleep, now,
});

app.use((req, res) => sendError(res, 404, 'Not Found', 'invalid_request_error', 'not_found'));

// Body parser failures (bad JSON, too large) keep each endpoint's own error shape. Express knows
// an error handler by its four parameters, so `next` stays although unused.
app.use((err, req, res, next) => {
  const status = err.status ?? err.statusCode ?? 500;
  const message = err.type === 'entity.parse.failed' ? 'body must be valid JSON' : err.message;
  if (req.path === '/infer' && status === 400) return sendInferBadRequest(res, message);
  if (status >= 500) console.error(err);
  return sendError(res, status, message, status >= 500 ? 'server_error' : 'invalid_request_error',
    status >= 500 ? 'server_error' : 'bad_request');
});

const server = app.listen(SETTINGS.port, SETTINGS.host);
server.on('error', (err) => fail(`cannot listen on ${SETTINGS.port}: ${err.message}`));
// Outlive the callers' idle keep-alive (aiohttp keeps 15 s, httpx 5 s): a server closing a pooled
// connection first makes the next request on it fail with a disconnect.
server.keepAliveTimeout = 75_000;
server.headersTimeout = 76_000;
