"""A streamed answer's first events, read before the gateway commits to it.

The Responses and Messages APIs answer 200 and may then fail in the stream: `response.failed`
or `error` (OpenAI), `error` with `overloaded_error` (Anthropic). Passed straight on, such a
stream is a 200 that the attempt loop never sees fail, so no retry or fallback runs. `peek`
holds back the preamble events (response.created, message_start, ping: nothing a client can
act on) until a decisive one arrives:
- content, or anything else: commit; the held events and the rest go on unchanged, at once;
- a failure the API's `judge` recognises: the attempt becomes an answer with the mapped status
  and the API's JSON error body, which the attempt loop retries, falls back from or returns.
Once a byte went out, a failure can only end the stream with the API's error event (bill.py).
At most PEEK_LIMIT bytes are held; past that the stream is committed as it is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ..core.upstream import UpstreamResponse
from ..http.headers import Headers
from .sse import last_boundary, split_events

PEEK_LIMIT = 64 * 1024
PREAMBLE = "preamble"  # a verdict: keep reading


@dataclass(frozen=True)
class Failure:
    """An in-stream failure as the HTTP answer it stands for."""

    status: int
    body: bytes  # the API's JSON error object
    retry_after_s: float | None = None


# (event name, decoded data) -> PREAMBLE, None (commit) or a Failure
Judge = Callable[[str, Any], "str | Failure | None"]


def parse_event(event: bytes) -> tuple[str, Any]:
    """(the `event:` name or the data's "type", the decoded `data:`; None if not JSON)."""
    name, data = "", []
    for line in event.decode("utf-8", "replace").splitlines():
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    try:
        decoded = json.loads("\n".join(data)) if data else None
    except ValueError:
        decoded = None
    if not name and isinstance(decoded, dict) and isinstance(decoded.get("type"), str):
        name = decoded["type"]
    return name, decoded


async def peek(answer: UpstreamResponse, judge: Judge
               ) -> tuple[UpstreamResponse, Failure | None]:
    """`answer` with its preamble read (and replayed), or the failure it opens with."""
    held, seen = b"", 0
    body = answer.body
    async for chunk in body:
        held += chunk
        cut = last_boundary(held)
        events, seen = (split_events(held[seen:cut]) if cut > seen else []), max(seen, cut)
        for event in events:
            verdict = judge(*parse_event(event))
            if isinstance(verdict, Failure):
                await _close(body)
                return _failed(verdict), verdict
            if verdict != PREAMBLE:
                return _replayed(answer, held), None
        if len(held) > PEEK_LIMIT:
            break
    return _replayed(answer, held), None


def _failed(failure: Failure) -> UpstreamResponse:
    headers = Headers([("content-type", "application/json"),
                       ("content-length", str(len(failure.body)))])
    if failure.retry_after_s is not None:
        headers.add("retry-after", str(max(1, round(failure.retry_after_s))))
    return UpstreamResponse(failure.status, headers, _once(failure.body))


def _replayed(answer: UpstreamResponse, held: bytes) -> UpstreamResponse:
    return UpstreamResponse(answer.status, answer.headers, _then(held, answer.body))


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        await _close(rest)


async def _close(body: object) -> None:
    close = getattr(body, "aclose", None)
    if close is not None:
        await close()
