"""The agents' APIs on the simulator: OpenAI Responses (/v1/responses, stored responses) and
Anthropic Messages (/v1/messages, /v1/messages/count_tokens). Included by app.py.

Token accounting as for chat: ceil(code points / 4) per text, 4 more per message; the answer is
app.answer_pieces. Test switches (headers):
- `x-sim-error: 429|5xx` answers that status before any byte (Anthropic paths in Anthropic's
  error shape: 429 rate_limit_error, 529 overloaded_error, other 5xx api_error), with the same
  `x-sim-error-times` / `x-sim-error-key` as every endpoint;
- `x-sim-stream-error: early|mid` on a stream: `early` sends the preamble event then the API's
  failure event (response.failed / error overloaded_error) inside a 200; `mid` sends half the
  deltas then drops the connection. With `x-sim-error-times` and `x-sim-error-key` only the
  first N such requests fail;
- `x-sim-cached-tokens: N` reports N prompt tokens as read from the prompt cache.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import app as sim
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

router = APIRouter()
STORED_MAX = 1000
_stored: OrderedDict[str, dict[str, Any]] = OrderedDict()  # id -> {"response", "input"}
_stream_failures: dict[str, int] = {}


class BrokenStream(Exception):
    """Raised inside a streamed body to drop the connection mid-stream."""


def stream_failure(request: Request) -> str | None:
    wanted = request.headers.get("x-sim-stream-error")
    if wanted not in ("early", "mid"):
        return None
    times, key = request.headers.get("x-sim-error-times"), request.headers.get("x-sim-error-key")
    if times is not None and times.isdigit() and key:
        if _stream_failures.get(key, 0) >= int(times):
            return None
        _stream_failures[key] = _stream_failures.get(key, 0) + 1
    return wanted


def cached_of(request: Request, prompt: int) -> int:
    raw = request.headers.get("x-sim-cached-tokens", "0")
    return min(prompt, int(raw)) if raw.isdigit() else 0


def named(event: str, payload: dict[str, Any]) -> bytes:
    return (f"event: {event}\ndata: ".encode()
            + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")


def content_text(content: Any) -> str:
    """A message's content: a string, or blocks of which the text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        texts = [part.get("text") for part in content
                 if part.get("type") in ("text", "input_text", "output_text")]
        if all(isinstance(text, str) for text in texts):
            return "".join(texts)
    raise sim.BadRequest("content must be a string or a list of text blocks")


# --- OpenAI Responses ------------------------------------------------------------------------

def response_input(body: dict[str, Any]) -> tuple[list[dict[str, str]], int]:
    """(input items as messages, prompt tokens) of a Responses request."""
    value = body.get("input")
    if isinstance(value, str):
        items, tokens = [{"role": "user", "content": value}], sim.estimate_tokens(value)
    elif isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
        items = [{"role": str(i.get("role", "user")), "content": content_text(i.get("content"))}
                 for i in value]
        tokens = sum(sim.estimate_tokens(i["content"]) + 4 for i in items)
    else:
        raise sim.BadRequest("input must be a string or a non-empty list of items")
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise sim.BadRequest("instructions must be a string")
        tokens += sim.estimate_tokens(instructions)
    return items, tokens


def response_object(rid: str, body: dict[str, Any], status: str, output: list, usage: Any,
                    error: Any = None) -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": int(time.time()), "status": status,
            "model": sim.model_of(body), "output": output, "usage": usage, "error": error,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete"
            else None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"), "store":
            body.get("store", True) is not False, "temperature": 1.0, "top_p": 1.0,
            "tool_choice": "auto", "tools": [], "text": {"format": {"type": "text"}},
            "metadata": {}}


def response_usage(prompt: int, output: int, cached: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + output}


def message_item(mid: str, text: str, status: str) -> dict[str, Any]:
    return {"id": mid, "type": "message", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


@router.post("/v1/responses")
async def create_response(request: Request) -> Response:
    if (failure := sim.injected_error(request)) is not None:
        return failure
    try:
        body = await sim.json_object(request)
        items, prompt = response_input(body)
        limit = body.get("max_output_tokens", sim.ANSWER_TOKENS)
        if not sim._is_int(limit) or limit < 1:
            raise sim.BadRequest("max_output_tokens must be a positive integer")
        if "stream_options" in body:  # as Azure OpenAI answers a gateway that injects it
            raise sim.BadRequest("Unknown parameter: 'stream_options'.")
        previous = body.get("previous_response_id")
        if previous is not None and previous not in _stored:
            return sim.error_response(404, f"Previous response with id '{previous}' not found.",
                                      "invalid_request_error", "previous_response_not_found")
    except sim.BadRequest as exc:
        return sim.bad_request(str(exc))
    user = next((i["content"] for i in reversed(items) if i["role"] == "user"),
                items[-1]["content"])
    pieces, finish = sim.answer_pieces(user, limit)
    rid, mid = f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
    usage = response_usage(prompt, len(pieces), cached_of(request, prompt))
    status = "incomplete" if finish == "length" else "completed"
    final = response_object(rid, body, status, [message_item(mid, "".join(pieces), "completed")],
                            usage)
    if body.get("store", True) is not False:
        _stored[rid] = {"response": final, "input": items}
        while len(_stored) > STORED_MAX:
            _stored.popitem(last=False)
    if body.get("stream") is True:
        failing = stream_failure(request)
        return sim.event_stream(response_events(body, final, pieces, failing))
    await sim.sleep_until(time.monotonic() + sim.generation_seconds(len(pieces)))
    return JSONResponse(final)


async def response_events(body: dict[str, Any], final: dict[str, Any], pieces: list[str],
                          failing: str | None) -> AsyncIterator[bytes]:
    rid, item = final["id"], final["output"][0]
    seq = iter(range(1_000_000))
    start = time.monotonic()

    def event(kind: str, **payload: Any) -> bytes:
        return named(kind, {"type": kind, "sequence_number": next(seq), **payload})

    opening = response_object(rid, body, "in_progress", [], None)
    yield event("response.created", response=opening)
    yield event("response.in_progress", response=opening)
    if failing == "early":
        error = {"code": "server_error", "message": "Simulated failure before any output."}
        yield event("response.failed", response=response_object(rid, body, "failed", [], None,
                                                                 error))
        return
    ids = {"item_id": item["id"], "output_index": 0}
    yield event("response.output_item.added", output_index=0,
                item={**item, "status": "in_progress", "content": []})
    part = {"type": "output_text", "text": "", "annotations": []}
    yield event("response.content_part.added", **ids, content_index=0, part=part)
    for index, piece in enumerate(pieces):
        if failing == "mid" and index == len(pieces) // 2:
            raise BrokenStream("simulated connection drop")
        await sim.sleep_until(start + sim.generation_seconds(index + 1))
        yield event("response.output_text.delta", **ids, content_index=0, delta=piece,
                    logprobs=[])
    text = "".join(pieces)
    yield event("response.output_text.done", **ids, content_index=0, text=text, logprobs=[])
    yield event("response.content_part.done", **ids, content_index=0, part={**part, "text": text})
    yield event("response.output_item.done", output_index=0, item=item)
    last = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    yield event(last, response=final)


def stored_or_404(rid: str) -> dict[str, Any] | Response:
    found = _stored.get(rid)
    if found is None:
        return sim.error_response(404, f"No response found with id '{rid}'.",
                                  "invalid_request_error", "not_found")
    return found


@router.get("/v1/responses/{rid}")
async def get_response(rid: str) -> Response:
    found = stored_or_404(rid)
    return found if isinstance(found, Response) else JSONResponse(found["response"])


@router.delete("/v1/responses/{rid}")
async def delete_response(rid: str) -> Response:
    found = stored_or_404(rid)
    if isinstance(found, Response):
        return found
    del _stored[rid]
    return JSONResponse({"id": rid, "object": "response.deleted", "deleted": True})


@router.get("/v1/responses/{rid}/input_items")
async def input_items(rid: str) -> Response:
    found = stored_or_404(rid)
    if isinstance(found, Response):
        return found
    data = [{"id": f"msg_{rid[5:]}_{i}", "type": "message", "status": "completed",
             "role": item["role"], "content": [{"type": "input_text", "text": item["content"]}]}
            for i, item in enumerate(found["input"])]
    return JSONResponse({"object": "list", "data": data, "first_id": data[0]["id"],
                         "last_id": data[-1]["id"], "has_more": False})
