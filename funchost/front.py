"""The host's HTTP front: each request becomes an invocation plus the same HTTP request forwarded
to the worker's server, streamed both ways, as the Functions host does for HTTP streaming.

Per request: match the route table (404 / 405), check the function key when keys are set (401),
refuse a body over the host's limit (413), then send the invocation request (the trigger's input
carries method, URL and route parameters only) and forward the request with
`x-ms-invocation-id` and `X-Forwarded-For/-Proto/-Host`. The worker's answer streams back as it
comes; a function that fails without an answer gives 500, a worker that is down 503, and no
answer within the function timeout (at most 230 s, the HTTP limit) 504. Host errors use
`funchost/errors.py`'s JSON shape.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator as AsyncGen
from typing import Any
from urllib.parse import urlsplit

from . import auth, errors
from .hostconfig import Limits
from .relay import direct_sink, relay_body, until_disconnect
from .routes import Route, match
from .supervisor import Supervisor
from .workerhttp import HOP_BY_HOP, WorkerConnectionError, WorkerHttp
from .workerproc import WorkerError, WorkerProcess

log = logging.getLogger("funchost")
WHOLE_BODY_BELOW = 256 * 1024  # smaller bodies are read whole: one write instead of a stream


class Front:
    def __init__(self, supervisor: Supervisor, keys: auth.Keys, limits: Limits,
                 function_timeout_s: float):
        self.supervisor = supervisor
        self.keys = keys
        self.limits = limits
        self.answer_timeout_s = min(function_timeout_s, limits.http_timeout_s)
        self.session: WorkerHttp | None = None

    def worker_changed(self, worker: WorkerProcess | None) -> None:
        """A fresh connection pool per worker: the old one points at a dead server."""
        old, self.session = self.session, None
        if old is not None:
            old.close()
        if worker is not None and worker.http_uri:  # an app without HTTP functions has none
            address = urlsplit(worker.http_uri)
            self.session = WorkerHttp(address.hostname or "127.0.0.1", address.port or 80)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        tracked = _Tracked(send)
        try:
            await self.serve(scope, receive, tracked)
        except Exception:
            log.exception("host failed on %s %s", scope["method"], scope["path"])
            if not tracked.started:  # else uvicorn cuts the connection: all that is left
                await _error(send, "internal_error", scope["headers"])

    async def serve(self, scope, receive, send) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        path = raw_path.decode("latin-1")
        worker = self.supervisor.current
        if worker is None:
            return await _error(send, "worker_unavailable", headers)
        found = match(self.supervisor.table, scope["method"], path)
        if found.route is None:
            code = "method_not_allowed" if found.allowed else "not_found"
            extra = [(b"allow", ", ".join(found.allowed).encode())] if found.allowed else []
            return await _error(send, code, headers, extra)
        if not auth.authorized(self.keys, found.route.function.auth_level,
                               auth.presented_key(headers, scope.get("query_string", b""))):
            return await _error(send, "unauthorized", headers)
        session = self.session
        if session is None:
            return await _error(send, "worker_unavailable", headers)
        length = _content_length(headers)
        if length is not None and length > self.limits.max_body_bytes:
            return await _error(send, "payload_too_large", headers)
        await self.forward(scope, receive, send, worker, session, found.route, found.params,
                           length)

    async def forward(self, scope, receive, send, worker: WorkerProcess,
                      session: WorkerHttp, route: Route, params: dict[str, str],
                      length: int | None) -> None:
        invocation_id = str(uuid.uuid4())
        query = scope.get("query_string", b"").decode("latin-1")
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        target += f"?{query}" if query else ""
        headers = _forward_headers(scope, invocation_id)
        try:
            invocation = worker.send("invocation_request", _invocation(
                invocation_id, route, scope["method"], target, params))
        except WorkerError:
            return await _error(send, "worker_unavailable", scope["headers"])
        invocation.add_done_callback(_log_failure)
        if length is not None and length <= WHOLE_BODY_BELOW:
            body: Any = await _read_all(receive)
        elif length == 0 or (length is None and not _chunked(scope["headers"])):
            body = None
        else:
            body = _stream_body(receive, self.limits.max_body_bytes)
        started = False
        try:
            response = await _answer(session.request(scope["method"], target, headers, body),
                                     invocation, self.answer_timeout_s)
            if response is None:
                return await _error(send, "function_failed", scope["headers"])
            try:
                if response.status == 500 and await _failed(invocation):
                    return await _error(send, "function_failed", scope["headers"])
                await send({"type": "http.response.start", "status": response.status,
                            "headers": response.headers})  # end-to-end fields only
                started = True
                streamed = response.content_length is None and not isinstance(body, AsyncGen)
                # The body's chunks skip the tracking wrapper: the head has gone out.
                raw = getattr(send, "raw", send)
                relay = relay_body(response, raw, self.limits.http_timeout_s,
                                   direct_sink(raw) if streamed else None)
                await (until_disconnect(relay, receive) if streamed else relay)
            finally:
                response.close()
        except TimeoutError:
            if not started:
                return await _error(send, "function_timeout", scope["headers"])
            log.warning("invocation %s: no data for %.0f s; answer cut", invocation_id,
                        self.limits.http_timeout_s)
        except _BodyTooLarge:
            if not started:
                return await _error(send, "payload_too_large", scope["headers"])
        except (WorkerConnectionError, OSError) as exc:
            if not started:
                log.warning("invocation %s: worker HTTP failed: %s", invocation_id, exc)
                return await _error(send, "worker_unavailable", scope["headers"])
            log.warning("invocation %s: answer broke off: %s", invocation_id, exc)
        if started:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


class _Tracked:
    """The server's `send`, noting whether an answer's head went out (`raw`: without)."""

    __slots__ = ("raw", "started")

    def __init__(self, send) -> None:
        self.raw = send
        self.started = False

    async def __call__(self, message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.raw(message)


def _invocation(invocation_id: str, route: Route, method: str, url: str,
                params: dict[str, str]) -> dict[str, Any]:
    """The invocation request: the trigger input is method, URL and route parameters only; the
    request itself reaches the worker's HTTP server."""
    http = {"method": method, "url": url, "params": params}
    return {"invocation_id": invocation_id, "function_id": route.function.function_id,
            "input_data": [{"name": route.function.trigger_param, "data": {"http": http}}]}


FORWARDED = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")


def _forward_headers(scope, invocation_id: str) -> list[tuple[bytes, bytes]]:
    """The client's headers less hop-by-hop ones (and those `Connection` names) and the framing
    (the forwarder sets its own), plus the invocation id and X-Forwarded-*.

    X-Forwarded-For, -Proto and -Host are set from what this host saw, replacing whatever the
    client sent, as the Functions host's forwarder does (YARP's default transforms set them);
    appending would let a client choose the address the worker's server reports as the peer.
    """
    out: list[tuple[bytes, bytes]] = []
    host = b""
    skip = HOP_BY_HOP | {b"content-length", b"x-ms-invocation-id", *FORWARDED}
    for name, value in scope["headers"]:
        if name == b"connection":
            skip = skip | {t.strip().lower() for t in value.split(b",")}
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
        if name not in skip:
            out.append((name, value))
    client = scope.get("client")
    out.append((b"x-forwarded-for", client[0].encode() if client else b""))
    out.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    if host:
        out.append((b"x-forwarded-host", host))
    out.append((b"x-ms-invocation-id", invocation_id.encode()))
    return out


def _content_length(headers) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _chunked(headers) -> bool:
    return any(name == b"transfer-encoding" for name, _ in headers)


async def _read_all(receive):
    """The whole (small) body as bytes; if the client leaves before it is in, a body stream
    that gives what arrived and then fails, so the worker sees a cut request (as the Functions
    host's forwarder passes a client's abort on), never a complete but shortened one."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return _cut(b"".join(chunks))
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _cut(received: bytes):
    if received:
        yield received
    raise WorkerConnectionError("the client went away mid-body")


class _BodyTooLarge(Exception):
    pass


async def _stream_body(receive, limit: int):
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise WorkerConnectionError("the client went away mid-body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge()
        if chunk:
            yield chunk
        if not message.get("more_body"):
            return


async def _answer(request, invocation: asyncio.Future, limit_s: float):
    """The worker server's response, or None when the invocation failed before one came (the
    library then may never answer the HTTP request). TimeoutError after `limit_s`;
    WorkerConnectionError when the worker went away."""
    pending = asyncio.ensure_future(request)
    try:
        async with asyncio.timeout(limit_s):
            done, _ = await asyncio.wait({pending, invocation},
                                         return_when=asyncio.FIRST_COMPLETED)
            if pending not in done and _invocation_failed(invocation):
                if not invocation.cancelled() and invocation.exception() is not None:
                    # The pipe closed: the worker is gone, not the function failed.
                    raise WorkerConnectionError(str(invocation.exception()))
                return None
            return await pending
    finally:
        if not pending.done():
            pending.cancel()


def _invocation_failed(invocation: asyncio.Future) -> bool:
    if invocation.cancelled() or invocation.exception() is not None:
        return True
    return (invocation.result().get("result") or {}).get("status", 0) != 1


async def _failed(invocation: asyncio.Future) -> bool:
    """Whether the invocation ended in failure (a 500 from the worker's server then means the
    function raised; the host answers its own error instead of the server's text)."""
    try:
        result = await asyncio.wait_for(asyncio.shield(invocation), 2.0)
    except (TimeoutError, WorkerError):
        return False
    return (result.get("result") or {}).get("status", 0) != 1


def _log_failure(invocation: asyncio.Future) -> None:
    if invocation.cancelled() or invocation.exception() is not None:
        return
    result = invocation.result().get("result") or {}
    if result.get("status", 0) != 1:
        exception = result.get("exception") or {}
        log.error("invocation %s failed: %s\n%s", invocation.result().get("invocation_id"),
                  exception.get("message", ""), exception.get("stack_trace", ""))


async def _error(send, code: str, request_headers, extra=()) -> None:
    status, headers, body = errors.error_body(code, errors.request_id(request_headers))
    await send({"type": "http.response.start", "status": status,
                "headers": headers + list(extra)})
    await send({"type": "http.response.body", "body": body})
