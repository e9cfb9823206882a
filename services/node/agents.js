// The agents' APIs on the Node simulator, in step with services/python/agents.py and
// messages.py: OpenAI Responses (/v1/responses, stored responses) and Anthropic Messages
// (/v1/messages, /v1/messages/count_tokens). Registered by server.js, which passes its helpers.
// Test switches: x-sim-error (Anthropic paths answer in Anthropic's shape), x-sim-stream-error
// (early | mid, with x-sim-error-times / x-sim-error-key), x-sim-cached-tokens.

'use strict';

const crypto = require('node:crypto');

const STORED_MAX = 1000;
const ANTHROPIC_TYPES = { 400: 'invalid_request_error', 401: 'authentication_error',
  404: 'not_found_error', 429: 'rate_limit_error', 529: 'overloaded_error' };

function register(app, h) {
  const stored = new Map(); // id -> { response, input }, oldest first
  const streamFailures = new Map();
  const hex = () => crypto.randomUUID().replaceAll('-', '');
  const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

  function streamFailure(req) {
    const wanted = req.get('x-sim-stream-error');
    if (wanted !== 'early' && wanted !== 'mid') return null;
    const times = req.get('x-sim-error-times');
    const key = req.get('x-sim-error-key');
    if (times !== undefined && /^\d+$/.test(times) && key) {
      const failed = streamFailures.get(key) ?? 0;
      if (failed >= Number(times)) return null;
      streamFailures.set(key, failed + 1);
    }
    return wanted;
  }

  function cachedOf(req, prompt) {
    const raw = req.get('x-sim-cached-tokens') ?? '0';
    return /^\d+$/.test(raw) ? Math.min(prompt, Number(raw)) : 0;
  }

  const named = (event, payload) => `event: ${event}\ndata: ${JSON.stringify(payload)}\n\n`;

  function contentText(content) {
    if (typeof content === 'string') return content;
    if (Array.isArray(content) && content.every(isObject)) {
      const texts = content.filter((p) => ['text', 'input_text', 'output_text'].includes(p.type))
        .map((p) => p.text);
      if (texts.every((t) => typeof t === 'string')) return texts.join('');
    }
    throw new h.BadRequest('content must be a string or a list of text blocks');
  }

  function openStream(res) {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();
    let closed = false;
    res.on('close', () => { closed = true; });
    const start = performance.now();
    return {
      closed: () => closed,
      until: async (tokens) => {
        const delay = start + h.generationMs(tokens) - performance.now();
        if (delay > 0) await h.sleep(delay);
      },
    };
  }

  // --- OpenAI Responses ------------------------------------------------------------------------

  function responseInput(body) {
    let items;
    let tokens;
    const value = body.input;
    if (typeof value === 'string') {
      items = [{ role: 'user', content: value }];
      tokens = h.estimateTokens(value);
    } else if (Array.isArray(value) && value.length && value.every(isObject)) {
      items = value.map((i) => ({ role: String(i.role ?? 'user'), content: contentText(i.content) }));
      tokens = items.reduce((sum, i) => sum + h.estimateTokens(i.content) + 4, 0);
    } else {
      throw new h.BadRequest('input must be a string or a non-empty list of items');
    }
    if (body.instructions !== undefined && body.instructions !== null) {
      if (typeof body.instructions !== 'string') {
        throw new h.BadRequest('instructions must be a string');
      }
      tokens += h.estimateTokens(body.instructions);
    }
    return [items, tokens];
  }

  function responseObject(id, body, status, output, usage, error = null) {
    return { id, object: 'response', created_at: h.now(), status, model: h.modelOf(body), output,
      usage, error, incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' }
        : null, instructions: body.instructions ?? null,
      max_output_tokens: body.max_output_tokens ?? null, parallel_tool_calls: true,
      previous_response_id: body.previous_response_id ?? null, store: body.store !== false,
      temperature: 1.0, top_p: 1.0, tool_choice: 'auto', tools: [],
      text: { format: { type: 'text' } }, metadata: {} };
  }

  const responseUsage = (prompt, output, cached) => ({ input_tokens: prompt,
    input_tokens_details: { cached_tokens: cached }, output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 }, total_tokens: prompt + output });

  const messageItem = (id, text, status) => ({ id, type: 'message', status, role: 'assistant',
    content: [{ type: 'output_text', text, annotations: [] }] });

  app.post('/v1/responses', h.injectErrors, h.parseJson, async (req, res) => {
    let body; let items; let prompt; let limit;
    try {
      body = h.jsonObject(req);
      [items, prompt] = responseInput(body);
      limit = body.max_output_tokens ?? 16;
      if (!Number.isInteger(limit) || limit < 1) {
        throw new h.BadRequest('max_output_tokens must be a positive integer');
      }
      if ('stream_options' in body) throw new h.BadRequest("Unknown parameter: 'stream_options'.");
      const previous = body.previous_response_id;
      if (previous !== undefined && previous !== null && !stored.has(previous)) {
        return h.sendError(res, 404, `Previous response with id '${previous}' not found.`,
          'invalid_request_error', 'previous_response_not_found');
      }
      h.modelOf(body);
    } catch (err) {
      if (err instanceof h.BadRequest) return h.sendBadRequest(res, err.message);
      throw err;
    }
    const user = items.findLast((i) => i.role === 'user') ?? items.at(-1);
    const [pieces, finish] = h.answerPieces(user.content, limit);
    const rid = `resp_${hex()}`;
    const usage = responseUsage(prompt, pieces.length, cachedOf(req, prompt));
    const status = finish === 'length' ? 'incomplete' : 'completed';
    const final = responseObject(rid, body, status,
      [messageItem(`msg_${hex()}`, pieces.join(''), 'completed')], usage);
    if (body.store !== false) {
      stored.set(rid, { response: final, input: items });
      while (stored.size > STORED_MAX) stored.delete(stored.keys().next().value);
    }
    if (body.stream === true) return responseEvents(res, body, final, pieces, streamFailure(req));
    await h.sleep(h.generationMs(pieces.length));
    return res.json(final);
  });

  async function responseEvents(res, body, final, pieces, failing) {
    const stream = openStream(res);
    let seq = 0;
    const event = (type, payload) => res.write(named(type, { type, sequence_number: seq++,
      ...payload }));
    const opening = responseObject(final.id, body, 'in_progress', [], null);
    event('response.created', { response: opening });
    event('response.in_progress', { response: opening });
    if (failing === 'early') {
      const error = { code: 'server_error', message: 'Simulated failure before any output.' };
      event('response.failed', { response: responseObject(final.id, body, 'failed', [], null,
        error) });
      return res.end();
    }
    const item = final.output[0];
    const ids = { item_id: item.id, output_index: 0 };
    event('response.output_item.added', { output_index: 0,
      item: { ...item, status: 'in_progress', content: [] } });
    const part = { type: 'output_text', text: '', annotations: [] };
    event('response.content_part.added', { ...ids, content_index: 0, part });
    for (const [index, piece] of pieces.entries()) {
      if (failing === 'mid' && index === Math.floor(pieces.length / 2)) return res.destroy();
      await stream.until(index + 1);
      if (stream.closed()) return undefined;
      event('response.output_text.delta', { ...ids, content_index: 0, delta: piece,
        logprobs: [] });
    }
    const text = pieces.join('');
    event('response.output_text.done', { ...ids, content_index: 0, text, logprobs: [] });
    event('response.content_part.done', { ...ids, content_index: 0, part: { ...part, text } });
    event('response.output_item.done', { output_index: 0, item });
    event(final.status === 'incomplete' ? 'response.incomplete' : 'response.completed',
      { response: final });
    return res.end();
  }

  function storedOr404(rid, res) {
    const found = stored.get(rid);
    if (!found) {
      h.sendError(res, 404, `No response found with id '${rid}'.`, 'invalid_request_error',
        'not_found');
    }
    return found;
  }

  app.get('/v1/responses/:rid', (req, res) => {
    const found = storedOr404(req.params.rid, res);
    if (found) res.json(found.response);
  });
  app.delete('/v1/responses/:rid', (req, res) => {
    const found = storedOr404(req.params.rid, res);
    if (!found) return;
    stored.delete(req.params.rid);
    res.json({ id: req.params.rid, object: 'response.deleted', deleted: true });
  });
  app.get('/v1/responses/:rid/input_items', (req, res) => {
    const { rid } = req.params;
    const found = storedOr404(rid, res);
    if (!found) return;
    const data = found.input.map((item, i) => ({ id: `msg_${rid.slice(5)}_${i}`, type: 'message',
      status: 'completed', role: item.role, content: [{ type: 'input_text', text: item.content }] }));
    res.json({ object: 'list', data, first_id: data[0].id, last_id: data.at(-1).id,
      has_more: false });
  });

  // --- Anthropic Messages ----------------------------------------------------------------------

  function anthropicType(status) {
    return ANTHROPIC_TYPES[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
  }

  function anthropicError(res, status, message, headers = {}) {
    res.status(status).set(headers).json({ type: 'error',
      error: { type: anthropicType(status), message } });
  }

  // Errors of the shared middleware (x-sim-error, bad JSON) in Anthropic's shape.
  function anthropicShape(req, res, next) {
    const json = res.json.bind(res);
    res.json = (body) => {
      if (res.statusCode >= 400 && isObject(body?.error) && body.type !== 'error') {
        const message = res.statusCode === 400 ? body.error.message : 'Simulated failure';
        return json({ type: 'error', error: { type: anthropicType(res.statusCode), message } });
      }
      return json(body);
    };
    next();
  }

  function promptOf(body) {
    const { messages } = body;
    if (!Array.isArray(messages) || !messages.length
        || !messages.every((m) => isObject(m) && typeof m.role === 'string')) {
      throw new h.BadRequest('messages: must be a non-empty list of {role, content}');
    }
    const texts = messages.map((m) => [m.role, contentText(m.content)]);
    let tokens = texts.reduce((sum, [, text]) => sum + h.estimateTokens(text) + 4, 0);
    if (body.system !== undefined && body.system !== null) {
      tokens += h.estimateTokens(contentText(body.system));
    }
    const user = texts.findLast(([role]) => role === 'user') ?? texts.at(-1);
    return [user[1], tokens];
  }

  app.post('/v1/messages', anthropicShape, h.injectErrors, h.parseJson, async (req, res) => {
    let body; let user; let prompt;
    try {
      body = h.jsonObject(req);
      [user, prompt] = promptOf(body);
      if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) {
        throw new h.BadRequest('max_tokens: Field required (a positive integer)');
      }
      h.modelOf(body);
    } catch (err) {
      if (err instanceof h.BadRequest) return anthropicError(res, 400, err.message);
      throw err;
    }
    const [pieces, finish] = h.answerPieces(user, body.max_tokens);
    const cached = cachedOf(req, prompt);
    const usage = { input_tokens: prompt - cached, output_tokens: pieces.length,
      cache_creation_input_tokens: 0, cache_read_input_tokens: cached };
    const message = { id: `msg_${hex()}`, type: 'message', role: 'assistant',
      model: h.modelOf(body), content: [{ type: 'text', text: pieces.join('') }],
      stop_reason: finish === 'length' ? 'max_tokens' : 'end_turn', stop_sequence: null, usage };
    if (body.stream === true) return messageEvents(res, message, pieces, streamFailure(req));
    await h.sleep(h.generationMs(pieces.length));
    return res.json(message);
  });

  async function messageEvents(res, message, pieces, failing) {
    const stream = openStream(res);
    const event = (type, payload) => res.write(named(type, { type, ...payload }));
    event('message_start', { message: { ...message, content: [], stop_reason: null,
      usage: { ...message.usage, output_tokens: 1 } } });
    if (failing === 'early') {
      event('error', { error: { type: 'overloaded_error', message: 'Overloaded' } });
      return res.end();
    }
    event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
    event('ping', {});
    for (const [index, piece] of pieces.entries()) {
      if (failing === 'mid' && index === Math.floor(pieces.length / 2)) return res.destroy();
      await stream.until(index + 1);
      if (stream.closed()) return undefined;
      event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: piece } });
    }
    event('content_block_stop', { index: 0 });
    event('message_delta', { delta: { stop_reason: message.stop_reason, stop_sequence: null },
      usage: { output_tokens: message.usage.output_tokens } });
    event('message_stop', {});
    return res.end();
  }

  app.post('/v1/messages/count_tokens', anthropicShape, h.injectErrors, h.parseJson,
    (req, res) => {
      try {
        const [, prompt] = promptOf(h.jsonObject(req));
        return res.json({ input_tokens: prompt });
      } catch (err) {
        if (err instanceof h.BadRequest) return anthropicError(res, 400, err.message);
        throw err;
      }
    });
}

module.exports = { register };
