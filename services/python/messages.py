"""Anthropic's Messages API on the simulator: POST /v1/messages (plain and streamed) and
/v1/messages/count_tokens, with Anthropic's error shape. Included by app.py; the test switches
are agents.py's (x-sim-error, x-sim-stream-error, x-sim-cached-tokens).

Usage as Anthropic reports it: `input_tokens` excludes the prompt tokens read from the cache
(`cache_read_input_tokens`); a stream gives the input in message_start and the cumulative
output in message_delta.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import app as sim
from agents import BrokenStream, cached_of, content_text, named, stream_failure
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

router = APIRouter()
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               429: "rate_limit_error", 529: "overloaded_error"}


def anthropic_error(status: int, message: str, **headers: str) -> Response:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message}},
                        status_code=status, headers=headers or None)


def injected(request: Request) -> Response | None:
    """app.injected_error's decision, answered in Anthropic's shape."""
    failure = sim.injected_error(request)
    if failure is None or failure.status_code == 400:
        return failure
    return anthropic_error(failure.status_code, "Simulated failure", **{"Retry-After": "1"})


def prompt_of(body: dict[str, Any]) -> tuple[str, int]:
    """(the last user text, prompt tokens) of a Messages request."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or \
            not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise sim.BadRequest("messages: must be a non-empty list of {role, content}")
    texts = [(m["role"], content_text(m.get("content"))) for m in messages]
    tokens = sum(sim.estimate_tokens(text) + 4 for _, text in texts)
    system = body.get("system")
    if system is not None:
        tokens += sim.estimate_tokens(content_text(system))
    user = next((text for role, text in reversed(texts) if role == "user"), texts[-1][1])
    return user, tokens


def usage(prompt: int, output: int, cached: int) -> dict[str, int]:
    return {"input_tokens": prompt - cached, "output_tokens": output,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


@router.post("/v1/messages")
async def create_message(request: Request) -> Response:
    if (failure := injected(request)) is not None:
        return failure
    try:
        body = await sim.json_object(request)
        user, prompt = prompt_of(body)
        limit = body.get("max_tokens")
        if not sim._is_int(limit) or limit < 1:
            raise sim.BadRequest("max_tokens: Field required (a positive integer)")
    except sim.BadRequest as exc:
        return anthropic_error(400, str(exc))
    pieces, finish = sim.answer_pieces(user, limit)
    stop = "max_tokens" if finish == "length" else "end_turn"
    counts = usage(prompt, len(pieces), cached_of(request, prompt))
    message = {"id": f"msg_{uuid.uuid4().hex}", "type": "message", "role": "assistant",
               "model": sim.model_of(body), "content": [{"type": "text",
                                                          "text": "".join(pieces)}],
               "stop_reason": stop, "stop_sequence": None, "usage": counts}
    if body.get("stream") is True:
        return sim.event_stream(message_events(message, pieces, stream_failure(request)))
    await sim.sleep_until(time.monotonic() + sim.generation_seconds(len(pieces)))
    return JSONResponse(message)


async def message_events(message: dict[str, Any], pieces: list[str], failing: str | None
                         ) -> AsyncIterator[bytes]:
    start = time.monotonic()
    counts = message["usage"]
    opening = {**message, "content": [], "stop_reason": None,
               "usage": {**counts, "output_tokens": 1}}
    yield named("message_start", {"type": "message_start", "message": opening})
    if failing == "early":
        yield named("error", {"type": "error", "error": {"type": "overloaded_error",
                                                         "message": "Overloaded"}})
        return
    yield named("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}})
    yield named("ping", {"type": "ping"})
    for index, piece in enumerate(pieces):
        if failing == "mid" and index == len(pieces) // 2:
            raise BrokenStream("simulated connection drop")
        await sim.sleep_until(start + sim.generation_seconds(index + 1))
        yield named("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": piece}})
    yield named("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield named("message_delta", {"type": "message_delta", "delta": {
        "stop_reason": message["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": counts["output_tokens"]}})
    yield named("message_stop", {"type": "message_stop"})


@router.post("/v1/messages/count_tokens")
async def count_tokens(request: Request) -> Response:
    if (failure := injected(request)) is not None:
        return failure
    try:
        _, prompt = prompt_of(await sim.json_object(request))
    except sim.BadRequest as exc:
        return anthropic_error(400, str(exc))
    return JSONResponse({"input_tokens": prompt})
