"""Pass an MCP server's answer on: JSON bodies checked and filtered whole, SSE streams event by
event, both within size limits, with the upstream session id swapped for the sealed one.

A stream ends (and its upstream exchange closes) when the server ends it, when an event passes
the size cap (a JSON-RPC error event is sent first if a request is waiting on this stream), or
when the exchange's deadline passes; a client can then resume it with Last-Event-ID.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable

from ..core.errors import GatewayError
from ..core.upstream import UpstreamResponse
from ..http.headers import Headers
from ..http.messages import GatewayResponse
from .errors import UPSTREAM_FAILED, McpUpstreamBroken
from .filtering import Allowed, filter_text
from .jsonrpc import error_body
from .sse import Event, EventTooLarge, SseParser

log = logging.getLogger(__name__)
PASSED_HEADERS = ("content-type", "cache-control", "mcp-protocol-version", "x-accel-buffering")
SSE, JSON = "text/event-stream", "application/json"


def kind_of(response: UpstreamResponse) -> str:
    return (response.headers.get("content-type") or "").split(";")[0].strip().lower()


def answer_headers(response: UpstreamResponse, session_id: str | None,
                   request_id: str) -> Headers:
    headers = Headers((name, value) for name, value in response.headers
                      if name in PASSED_HEADERS)
    if session_id is not None:
        headers.set("mcp-session-id", session_id)
    return headers


async def read_json(response: UpstreamResponse, cap: int, allowed: Allowed) -> bytes:
    """The whole JSON answer, filtered; McpUpstreamBroken past `cap` bytes or if not JSON."""
    chunks, size = [], 0
    try:
        async for chunk in response.body:
            size += len(chunk)
            if size > cap:
                raise McpUpstreamBroken()
            chunks.append(chunk)
    finally:
        await _close(response.body)
    raw = b"".join(chunks)
    if not raw.strip():
        return b""  # 202 Accepted (a notification) has no body, whatever its content type
    try:
        return filter_text(raw.decode("utf-8"), allowed).encode()
    except (ValueError, UnicodeError):
        raise McpUpstreamBroken() from None


def relay_stream(response: UpstreamResponse, cap: int, allowed: Allowed, waiting: object,
                 request_id: str, done: Callable[[str], None]) -> AsyncIterator[bytes]:
    """The server's SSE stream, event by event; `done(outcome)` once it ends."""

    async def events() -> AsyncIterator[bytes]:
        parser, outcome = SseParser(cap), "ok"
        try:
            async for chunk in response.body:
                for event in parser.feed(chunk):
                    yield rewrite(event, allowed)
        except EventTooLarge:
            outcome = "event_too_large"
            log.warning("MCP stream ended: an event passed %d bytes, request_id=%s", cap,
                        request_id)
            if waiting is not None:
                yield _error_event(waiting, request_id)
        except GatewayError as exc:  # the deadline or a broken upstream: end, resumable
            outcome = exc.code
        finally:
            await _close(response.body)
            done(outcome)

    return events()


def rewrite(event: Event, allowed: Allowed) -> bytes:
    """The event as received, unless its data is JSON: then re-encoded and filtered."""
    data = event.data
    if data is None:
        return event.raw + b"\n\n"
    try:
        return event.with_data(filter_text(data, allowed))
    except ValueError:
        return event.raw + b"\n\n"  # not JSON (a priming event, a comment): nothing to filter


def _error_event(rpc_id: object, request_id: str) -> bytes:
    body = error_body(rpc_id, UPSTREAM_FAILED, McpUpstreamBroken.public_message,
                      {"code": McpUpstreamBroken.code, "request_id": request_id})
    return b"event: message\ndata: " + body + b"\n\n"


def json_answer(status: int, headers: Headers, body: bytes) -> GatewayResponse:
    headers.set("content-type", JSON)
    return GatewayResponse(status, headers, body)


async def _close(body: object) -> None:
    close = getattr(body, "aclose", None)
    if close is not None:
        await close()


def encoded(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
