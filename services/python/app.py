"""Simulated inference backend: /infer echo plus deterministic OpenAI-compatible endpoints.

Run: python -m uvicorn app:app --host 127.0.0.1 --port 8001 --no-access-log
services/node/server.js implements the same contract; keep the two in step.

Env (checked at import; a bad value exits naming it): PORT, MODEL_NAME, LATENCY_MIN_MS and
LATENCY_MAX_MS (uniform /infer latency), ERROR_RATE (fraction of /infer answered 500), TTFT_MS
(time to the first token) and TOKEN_MS (time per further token).

Token accounting, identical in both simulators:
- prompt tokens: ceil(code points / 4) per text, plus 4 per chat message;
- the answer repeats the words of "echo: <prompt>" up to ANSWER_TOKENS words, one word per token,
  cut short by max_tokens / max_completion_tokens (finish_reason "length").

Errors on demand (every endpoint but /healthz): `x-sim-error: 429|5xx` answers that status with an
OpenAI error body and `Retry-After: 1`; with `x-sim-error-times: N` and `x-sim-error-key: K` only
the first N requests carrying K fail.

Held streams (tests that a stream is relayed as it is made, without timing it): a streamed chat
completion carrying `x-sim-hold-key: K` (at most 64 characters) sends its first token event, then
waits until `POST /sim/release/K` or HOLD_S; the release answers `{"held": true}` while a stream
on K has not ended, `{"held": false}` otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import os
import random
import struct
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

SERVICE = "python-sim"
ANSWER_TOKENS = 16
EMBEDDING_DIMS = 16
MODEL_CREATED = 1_700_000_000


@dataclass(frozen=True)
class Settings:
    model_name: str
    latency_min_ms: int
    latency_max_ms: int
    error_rate: float
    ttft_ms: int
    token_ms: int


def _env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise SystemExit(f"invalid env {name}={raw!r}: expected an integer in [{low}, {high}]")
    return value


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate the environment up front so a bad value stops the process with its name."""
    _env_int(env, "PORT", 8001, 1, 65535)  # uvicorn binds it; checked so typos fail loudly
    model_name = env.get("MODEL_NAME", "sim-python")
    if not model_name.strip():
        raise SystemExit("invalid env MODEL_NAME: must not be empty")
    latency_min = _env_int(env, "LATENCY_MIN_MS", 30, 0, 600_000)
    latency_max = _env_int(env, "LATENCY_MAX_MS", 50, 0, 600_000)
    if latency_max < latency_min:
        raise SystemExit(
            f"invalid env LATENCY_MAX_MS={latency_max}: below LATENCY_MIN_MS={latency_min}"
        )
    raw_rate = env.get("ERROR_RATE", "0")
    try:
        error_rate = float(raw_rate)
    except ValueError:
        error_rate = math.nan
    if not 0 <= error_rate <= 1:
        raise SystemExit(f"invalid env ERROR_RATE={raw_rate!r}: expected a number in [0, 1]")
    return Settings(
        model_name=model_name,
        latency_min_ms=latency_min,
        latency_max_ms=latency_max,
        error_rate=error_rate,
        ttft_ms=_env_int(env, "TTFT_MS", 200, 0, 600_000),
        token_ms=_env_int(env, "TOKEN_MS", 20, 0, 600_000),
    )


SETTINGS = load_settings(os.environ)
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


class BadRequest(Exception):
    """A malformed request body; answered 400 in the OpenAI error format."""


def error_response(status: int, message: str, err_type: str, code: str, **headers: str) -> Response:
    body = {"error": {"message": message, "type": err_type, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers or None)


def bad_request(message: str) -> Response:
    return error_response(400, message, "invalid_request_error", "bad_request")


@app.exception_handler(HTTPException)
async def http_error(_request: Request, exc: HTTPException) -> Response:
    # Unknown paths and wrong methods get the same JSON error shape as everything else.
    code = "not_found" if exc.status_code == 404 else "bad_request"
    return error_response(exc.status_code, str(exc.detail), "invalid_request_error", code)


# --- error injection -------------------------------------------------------------------------

# Failures already served per x-sim-error-key. Grows with distinct keys; fine for a test double.
_injected_failures: dict[str, int] = {}


def injected_error(request: Request) -> Response | None:
    """Honour x-sim-error (429 or 5xx), optionally only for the first N requests of a key."""
    wanted = request.headers.get("x-sim-error")
    if wanted is None:
        return None
    if not (wanted.isdigit() and (int(wanted) == 429 or 500 <= int(wanted) <= 599)):
        return bad_request("x-sim-error must be 429 or a 5xx status")
    status = int(wanted)
    times = request.headers.get("x-sim-error-times")
    if times is not None:
        key = request.headers.get("x-sim-error-key")
        if not times.isdigit() or not key:
            return bad_request("x-sim-error-times needs a non-negative integer and x-sim-error-key")
        failed = _injected_failures.get(key, 0)
        if failed >= int(times):
            return None
        _injected_failures[key] = failed + 1
    if status == 429:
        return error_response(429, "Simulated rate limit", "requests", "rate_limit_exceeded",
                              **{"Retry-After": "1"})
    return error_response(status, "Simulated server error", "server_error", "server_error",
                          **{"Retry-After": "1"})


# --- request parsing -------------------------------------------------------------------------

async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:  # includes undecodable bytes
        raise BadRequest("body must be valid JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def max_tokens_of(body: dict[str, Any]) -> int:
    """The answer length: ANSWER_TOKENS, capped by max_completion_tokens or max_tokens."""
    for field in ("max_completion_tokens", "max_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if not _is_int(value) or value < 1:
            raise BadRequest(f"{field} must be a positive integer")
        return value
    return ANSWER_TOKENS


def model_of(body: dict[str, Any]) -> str:
    model = body.get("model", SETTINGS.model_name)
    if not isinstance(model, str):
        raise BadRequest("model must be a string")
    return model


@dataclass(frozen=True)
class Generation:
    """What a completion request asks for, besides its prompt."""

    model: str
    limit: int
    stream: bool
    include_usage: bool


def generation_of(body: dict[str, Any]) -> Generation:
    stream = body.get("stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise BadRequest("stream must be a boolean and stream_options an object")
    return Generation(model_of(body), max_tokens_of(body), stream,
                      options.get("include_usage") is True)


def message_text(message: Any) -> tuple[str, str]:
    """(role, text) of a chat message; content may be a string, text parts or null."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        raise BadRequest("each message must be an object with a string role")
    content = message.get("content")
    if content is None or isinstance(content, str):
        return message["role"], content or ""
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        texts = [part.get("text") for part in content if part.get("type") == "text"]
        if all(isinstance(text, str) for text in texts):
            return message["role"], "".join(texts)
    raise BadRequest("message content must be a string, a list of text parts or null")


def text_list(value: Any, field: str) -> list[str]:
    """A string or a non-empty list of strings, as a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    raise BadRequest(f"{field} must be a string or a non-empty list of strings")


# --- deterministic generation ----------------------------------------------------------------

def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def answer_pieces(prompt: str, limit: int) -> tuple[list[str], str]:
    """Stream pieces of the answer (joined they give its text) and its finish_reason."""
    words = f"echo: {prompt}".split()
    count = min(limit, ANSWER_TOKENS)
    pieces = [words[i % len(words)] if i == 0 else " " + words[i % len(words)]
              for i in range(count)]
    return pieces, "length" if limit < ANSWER_TOKENS else "stop"


def embedding(text: str) -> list[float]:
    """A unit vector from the SHA-256 of the text: 16 big-endian uint16 mapped to [-1, 1]."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [value / 32767.5 - 1 for value in struct.unpack(">16H", digest)]
    # Left-to-right addition as Node's simulator does it: from Python 3.12, sum() of floats is
    # compensated and its last bits differ, which the parity test between the two would see.
    squares = 0.0
    for x in raw:
        squares += x * x
    norm = math.sqrt(squares) or 1.0
    return [x / norm for x in raw]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


async def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def generation_seconds(tokens: int) -> float:
    """When the last token is ready: TTFT for the first token, TOKEN_MS for each further one."""
    return (SETTINGS.ttft_ms + SETTINGS.token_ms * max(tokens - 1, 0)) / 1000


HOLD_S = 30  # the longest a held stream waits for its release
HOLDS: dict[str, asyncio.Event] = {}  # streams holding after their first event, by key
MAX_HOLDS = 1000


def hold_of(request: Request) -> str | None:
    """The request's hold key, registered now so a release can never come too early."""
    key = request.headers.get("x-sim-hold-key")
    if not key or len(key) > 64 or key in HOLDS or len(HOLDS) >= MAX_HOLDS:
        return None
    HOLDS[key] = asyncio.Event()
    return key


async def sse_events(
    head: dict[str, Any], choices: list[dict[str, Any]], final: dict[str, Any],
    final_usage: dict[str, int] | None, hold: str | None = None,
) -> AsyncIterator[bytes]:
    """One event per token choice on the TTFT/TOKEN_MS schedule, then finish, usage, [DONE];
    with `hold`, the events after the first wait for its release (see the module's text)."""
    start = time.monotonic()
    # With include_usage OpenAI sends "usage": null on every chunk but the last one.
    extra = {"usage": None} if final_usage is not None else {}
    try:
        for index, choice in enumerate(choices):
            await sleep_until(start + generation_seconds(index + 1))
            yield sse({**head, "choices": [choice], **extra})
            if index == 0 and hold is not None:
                try:
                    await asyncio.wait_for(HOLDS[hold].wait(), HOLD_S)
                except TimeoutError:
                    pass
                start = time.monotonic() - generation_seconds(1)
        yield sse({**head, "choices": [final], **extra})
        if final_usage is not None:
            yield sse({**head, "choices": [], "usage": final_usage})
        yield b"data: [DONE]\n\n"
    finally:
        if hold is not None:
            HOLDS.pop(hold, None)


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def event_stream(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --- routes ----------------------------------------------------------------------------------

@app.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"ok": True, "service": SERVICE, "model": SETTINGS.model_name}


SLOW_MS = 120  # the prototype's cache demo: a backend answer worth caching


@app.api_route("/slow", methods=["GET", "HEAD"])
async def slow(request: Request) -> Response:
    """Answers after SLOW_MS, the same JSON every time (the gateway's GET /slow caches it)."""
    if (failure := injected_error(request)) is not None:
        return failure
    await asyncio.sleep(SLOW_MS / 1000)
    return JSONResponse({"ok": True, "service": SERVICE, "slow_ms": SLOW_MS})


@app.post("/sim/release/{key}")
async def release(key: str) -> dict[str, bool]:
    """Let the stream held on `key` go on; whether one was (see the module's text)."""
    event = HOLDS.get(key)
    if event is not None:
        event.set()
    return {"held": event is not None}


@app.post("/infer")
async def infer(request: Request) -> Response:
    if (failure := injected_error(request)) is not None:
        return failure
    try:
        body = await json_object(request)
    except BadRequest as exc:
        return infer_bad_request(str(exc))
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        return infer_bad_request("prompt must be a string")
    latency_ms = random.randint(SETTINGS.latency_min_ms, SETTINGS.latency_max_ms)
    if latency_ms:
        await asyncio.sleep(latency_ms / 1000)
    if random.random() < SETTINGS.error_rate:
        return JSONResponse({"error": {"code": "simulated_error", "message": "simulated failure"}},
                            status_code=500)
    return JSONResponse({"result": f"echo: {prompt}", "latency_ms": latency_ms,
                         "model": SETTINGS.model_name})


def infer_bad_request(message: str) -> Response:
    return JSONResponse({"error": {"code": "bad_request", "message": message}}, status_code=400)


@app.get("/v1/models")
async def list_models(request: Request) -> Response:
    if (failure := injected_error(request)) is not None:
        return failure
    return JSONResponse({"object": "list", "data": [
        {"id": SETTINGS.model_name, "object": "model", "created": MODEL_CREATED, "owned_by": "sim"},
    ]})


@app.post("/v1/chat/completions")
async def chat_completions(request: Request) -> Response:
    if (failure := injected_error(request)) is not None:
        return failure
    try:
        body = await json_object(request)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list")
        parsed = [message_text(message) for message in messages]
        gen = generation_of(body)
    except BadRequest as exc:
        return bad_request(str(exc))
    prompt = next((text for role, text in reversed(parsed) if role == "user"), parsed[-1][1])
    pieces, finish_reason = answer_pieces(prompt, gen.limit)
    tokens = usage(sum(estimate_tokens(text) + 4 for _, text in parsed), len(pieces))
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk" if gen.stream else "chat.completion",
            "created": int(time.time()), "model": gen.model}
    if gen.stream:
        choices = [{"index": 0, "delta": {"role": "assistant", "content": piece} if i == 0
                    else {"content": piece}, "logprobs": None, "finish_reason": None}
                   for i, piece in enumerate(pieces)]
        final = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason}
        return event_stream(sse_events(head, choices, final, tokens if gen.include_usage else None,
                                       hold_of(request)))
    await asyncio.sleep(generation_seconds(len(pieces)))
    message = {"role": "assistant", "content": "".join(pieces)}
    return JSONResponse({**head, "choices": [
        {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason},
    ], "usage": tokens})


@app.post("/v1/completions")
async def completions(request: Request) -> Response:
    if (failure := injected_error(request)) is not None:
        return failure
    try:
        body = await json_object(request)
        prompts = text_list(body.get("prompt"), "prompt")
        if len(prompts) != 1:
            raise BadRequest("prompt lists must hold exactly one string")
        gen = generation_of(body)
    except BadRequest as exc:
        return bad_request(str(exc))
    pieces, finish_reason = answer_pieces(prompts[0], gen.limit)
    tokens = usage(estimate_tokens(prompts[0]), len(pieces))
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
            "created": int(time.time()), "model": gen.model}
    if gen.stream:
        choices = [{"index": 0, "text": piece, "logprobs": None, "finish_reason": None}
                   for piece in pieces]
        final = {"index": 0, "text": "", "logprobs": None, "finish_reason": finish_reason}
        return event_stream(sse_events(head, choices, final, tokens if gen.include_usage else None,
                                       hold_of(request)))
    await asyncio.sleep(generation_seconds(len(pieces)))
    return JSONResponse({**head, "choices": [
        {"index": 0, "text": "".join(pieces), "logprobs": None, "finish_reason": finish_reason},
    ], "usage": tokens})


@app.post("/v1/embeddings")
async def embeddings(request: Request) -> Response:
    if (failure := injected_error(request)) is not None:
        return failure
    try:
        body = await json_object(request)
        texts = text_list(body.get("input"), "input")
        model = model_of(body)
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise BadRequest("encoding_format must be 'float' or 'base64'")
    except BadRequest as exc:
        return bad_request(str(exc))
    data = []
    for index, text in enumerate(texts):
        vector: Any = embedding(text)
        if encoding == "base64":  # what the official OpenAI clients request by default
            vector = base64.b64encode(struct.pack(f"<{EMBEDDING_DIMS}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    prompt_tokens = sum(estimate_tokens(text) for text in texts)
    return JSONResponse({"object": "list", "data": data, "model": model,
                         "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})


# The agents' APIs (Responses, Messages) live in modules of their own; imported last, since
# they use the helpers above.
from agents import router as responses_router  # noqa: E402
from messages import router as messages_router  # noqa: E402

app.include_router(responses_router)
app.include_router(messages_router)
