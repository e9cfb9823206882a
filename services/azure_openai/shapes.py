"""Azure OpenAI's additions to OpenAI's answer shapes, applied to the Python simulator's output:
prompt_filter_results, content_filter_results, usage details and x-ratelimit-remaining-*."""

from __future__ import annotations

import json
from typing import Any

SAFE = {name: {"filtered": False, "severity": "safe"}
        for name in ("hate", "self_harm", "sexual", "violence")}
PROMPT_FILTER = [{"prompt_index": 0, "content_filter_results": SAFE}]
RATE_HEADERS = [(b"x-ratelimit-remaining-requests", b"99"),
                (b"x-ratelimit-remaining-tokens", b"99000")]


def content_filter_error() -> dict[str, Any]:
    results = {**SAFE, "violence": {"filtered": True, "severity": "high"}}
    return {"error": {"code": "content_filter", "status": 400, "param": "prompt",
                      "message": "The response was filtered due to the prompt triggering "
                                 "Azure OpenAI's content management policy.",
                      "innererror": {"code": "ResponsibleAIPolicyViolation",
                                     "content_filter_result": results}}}


def detailed_usage(usage: dict, cached: bool) -> dict:
    prompt = usage.get("prompt_tokens", 0)
    return {**usage, "prompt_tokens_details": {"cached_tokens": prompt if cached else 0},
            "completion_tokens_details": {"reasoning_tokens": 0}}


def augment(payload: dict, cached: bool) -> dict:
    """One answer object (or stream chunk) with Azure's additions."""
    if isinstance(payload.get("usage"), dict):
        payload["usage"] = detailed_usage(payload["usage"], cached)
    for choice in payload.get("choices") or []:
        choice["content_filter_results"] = SAFE
    if payload.get("object") in ("chat.completion", "text_completion"):
        payload["prompt_filter_results"] = PROMPT_FILTER
    return payload


def augmenting_send(send, cached: bool):
    """An ASGI `send` that rewrites the inner answer: JSON bodies whole, SSE event by event
    (the Python simulator sends one event per body message), with a first event holding
    prompt_filter_results as Azure streams do."""
    state: dict[str, Any] = {"stream": False, "buffer": b"", "first": True}

    async def wrapped(message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message["headers"] if k != b"content-length"]
            state["stream"] = any(k == b"content-type" and v.startswith(b"text/event-stream")
                                  for k, v in headers)
            state["start"] = {**message, "headers": headers + RATE_HEADERS}
            if state["stream"]:
                await send(state["start"])
            return
        body, more = message.get("body", b""), message.get("more_body", False)
        if state["stream"]:
            await _stream_part(send, state, body, more, cached)
            return
        state["buffer"] += body
        if more:
            return
        try:
            out = json.dumps(augment(json.loads(state["buffer"]), cached)).encode()
        except ValueError:
            out = state["buffer"]
        start = state["start"]
        start["headers"].append((b"content-length", str(len(out)).encode()))
        await send(start)
        await send({"type": "http.response.body", "body": out, "more_body": False})

    return wrapped


async def _stream_part(send, state: dict, body: bytes, more: bool, cached: bool) -> None:
    if state["first"] and body:
        state["first"] = False
        first = {"id": "", "object": "", "created": 0, "model": "", "choices": [],
                 "prompt_filter_results": PROMPT_FILTER}
        await send({"type": "http.response.body", "more_body": True,
                    "body": b"data: " + json.dumps(first).encode() + b"\n\n"})
    if body.startswith(b"data: {"):
        payload = json.loads(body[6:].strip())
        body = b"data: " + json.dumps(augment(payload, cached)).encode() + b"\n\n"
    await send({"type": "http.response.body", "body": body, "more_body": more})
