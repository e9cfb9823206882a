"""The FunctionApp and its HTTP functions: the only code that knows about Azure Functions.

Handlers take and return the FastAPI types re-exported by azurefunctions-extensions-http-fastapi,
so answers stream end to end; that extension is all or nothing, so every HTTP function here uses
them. `/healthz` is anonymous; everything else goes through one function-level catch-all into the
gateway pipeline, whose route table is configuration.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import anyio
import azure.functions as func
from azurefunctions.extensions.http.fastapi import (
    JSONResponse,
    Request,
    Response,
    StreamingResponse,
)
from starlette.types import Receive

from function_app.http.messages import GatewayRequest, GatewayResponse

from .core.errors import ClientDisconnected, GatewayError, Misconfigured, NotFound, PayloadTooLarge
from .core.paths import raw_path_of
from .http.forwarding import request_id_from
from .http.headers import Headers
from .http.messages import Unread
from .settings.errors import SettingsError
from .telemetry.dashboard import DASHBOARD_CSP, dashboard_page
from .wiring.lazy import LazyGateway
from .worker_http import SERVER_SEND, harden_worker_http

if TYPE_CHECKING:  # the gateway's modules load when it is built (wiring/lazy.py)
    from .wiring.gateway import Gateway

log = logging.getLogger(__name__)

harden_worker_http()  # before the worker builds its HTTP server (worker_http.py)
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
gateway = LazyGateway(lambda: os.environ, freeze=True)  # gc.freeze after the build

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# The host resolves the app setting HEALTH_CHECK_SCHEDULE (SPECS: NCRONTAB with seconds,
# every 10 s by default) when it reads the binding, so the schedule is configuration, not code.
HEALTH_CHECK_SCHEDULE = "%HEALTH_CHECK_SCHEDULE%"


@app.timer_trigger(schedule=HEALTH_CHECK_SCHEDULE, arg_name="timer", run_on_startup=False,
                   use_monitor=False)
async def health_checks(timer: func.TimerRequest) -> None:
    """Active health checks of every backend (one instance per app probes, by lease)."""
    if timer.past_due:
        log.info("health-check timer is past due")
    await run_health_checks()


async def run_health_checks() -> dict:
    """The timer's body: probe and record when this instance holds the lease (routing/probes)."""
    try:
        instance = await gateway.get()
    except SettingsError as exc:
        log.error("gateway cannot start: %s", exc)
        return {"ran": False, "reason": "misconfigured"}
    if instance.health_checks is None:
        return {"ran": False, "reason": "no routing storage configured"}
    return await instance.health_checks()


def with_gateway(handler: Callable[[Request, Gateway], Awaitable[Response]]
                 ) -> Callable[[Request], Awaitable[Response]]:
    """The HTTP function that calls `handler` with the built gateway; a bad setting answers 503
    (misconfigured) instead. The function keeps `handler`'s name and doc but not `__wrapped__`:
    the worker indexes its own signature, `(req: Request) -> Response`."""

    async def function(req: Request) -> Response:
        try:
            instance = await gateway.get()
        except SettingsError as exc:
            return _misconfigured(req, exc)
        return await handler(req, instance)

    return _named_as(function, handler)



def _named_as[F: Callable](wrapper: F, handler: Callable) -> F:
    """`wrapper` under `handler`'s name and docstring (the worker indexes functions by name;
    `functools.wraps` would also set `__wrapped__`, which signature checks follow)."""
    wrapper.__name__ = wrapper.__qualname__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper

def operator_only(handler: Callable[[Request, Gateway], Awaitable[Response]]
                  ) -> Callable[[Request, Gateway], Awaitable[Response]]:
    """`handler` behind the operator rule (docs/SECURITY.md): with GATEWAY_AUTH on, only a
    request with an operator key reaches it; the others get the JSON 401/403."""

    async def checked(req: Request, instance: Gateway) -> Response:
        if instance.authorize_operator is not None:
            try:
                await instance.authorize_operator(to_gateway_request(req))
            except GatewayError as exc:
                return _error(req, exc)
        return await handler(req, instance)

    return _named_as(checked, handler)


@app.route(route="healthz", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@with_gateway
async def healthz(req: Request, instance: Gateway) -> Response:
    """Anyone: each backend's name and state, no URL, route or pool (wiring/health.py)."""
    return JSONResponse(await instance.health.report(), headers={"cache-control": "no-store"})


@app.route(route="_gateway/health", methods=["GET"])
@with_gateway
@operator_only
async def health_detail(req: Request, instance: Gateway) -> Response:
    """The operator's /healthz: backend URLs (shown without userinfo), pools, breakers."""
    return JSONResponse(await instance.health.report(detail=True),
                        headers={"cache-control": "no-store"})


@app.route(route="_gateway/stats", methods=["GET"])
@with_gateway
@operator_only
async def stats(req: Request, instance: Gateway) -> Response:
    return JSONResponse(instance.stats(), headers={"cache-control": "no-store"})


@app.route(route="cachez", methods=["GET"])
@with_gateway
@operator_only
async def cachez(req: Request, instance: Gateway) -> Response:
    """The response cache's counters: hits, misses, hit_ratio, backend, ttl, tiers."""
    source = instance.stats_sources.get("cache")
    body = source() if source is not None else {"enabled": False, "hits": 0, "misses": 0,
                                                "hit_ratio": 0.0, "backend": "none", "ttl": 0}
    return JSONResponse(body, headers={"cache-control": "no-store"})


@app.route(route="metrics", methods=["GET"])
@with_gateway
@operator_only
async def metrics(req: Request, instance: Gateway) -> Response:
    """This instance's metrics in Prometheus text format (telemetry/metrics.py)."""
    if instance.telemetry is None:
        return _not_found(req, "Metrics are off (TELEMETRY_ENABLED=false).")
    from .telemetry.metrics import CONTENT_TYPE  # loaded with telemetry, not at indexing

    return Response(instance.telemetry.metrics.render(), media_type=CONTENT_TYPE,
                    headers={"cache-control": "no-store"})


@app.route(route="_gateway/dashboard", methods=["GET"])
async def dashboard(req: Request) -> Response:
    """One page that polls GET /metrics and draws it (telemetry/dashboard.html). The page holds
    no data, so it is not behind the operator rule (a browser cannot send a key when it opens a
    page); its data, GET /metrics, is. The page sends the key given in its URL's fragment."""
    return Response(dashboard_page(), media_type="text/html; charset=utf-8",
                    headers={"cache-control": "no-store", "x-content-type-options": "nosniff",
                             "content-security-policy": DASHBOARD_CSP})


@app.route(route="{*path}", methods=ALL_METHODS)
async def proxy(req: Request) -> Response:
    """Every other request, through the gateway pipeline. What `with_gateway` does, written
    out: this function runs for every request, and the wrapper was a coroutine more each;
    once the gateway is built it is read without awaiting `get` (a coroutine more each)."""
    instance = gateway.ready
    if instance is None:
        try:
            instance = await gateway.get()
        except SettingsError as exc:
            return _misconfigured(req, exc)
    return to_response(await instance.serve(to_gateway_request(req)))


def to_gateway_request(req: Request) -> GatewayRequest:
    scope = req.scope  # read directly: building req.url costs more than the rest of this
    # `in` and subscripts: the same defaults as scope.get, without four method calls a request
    client = scope["client"] if "client" in scope else None
    query = scope["query_string"] if "query_string" in scope else b""
    raw_path = scope["raw_path"] if "raw_path" in scope else None
    request = GatewayRequest(
        method=scope["method"], path=scope["path"],
        query=query.decode("latin-1") if query else "",
        headers=Headers.from_raw(scope["headers"]),
        body=Unread(partial(_read_body, req._receive)),  # the property is a call more
        client_host=client[0] if client else "",
        scheme=scope["scheme"] if "scheme" in scope else "http",
        # The upstream path is built from the raw path: the decoded one has merged %2f into /.
        raw_path=raw_path.decode("latin-1") if raw_path else raw_path_of(None, scope["path"]))
    return request


async def _read_body(receive: Receive, cap: int) -> bytes:
    """The body from the ASGI `receive`, stopping as soon as it passes `cap` bytes (413) rather
    than after it is all in; a client gone first is ClientDisconnected.

    What Starlette's `Request.stream()` reads, read here: that async generator was a frame
    resumed per message, and the loop's first-iteration and finalizer hooks (a WeakSet entry
    added and removed) per request. Nothing else reads this request's body (the worker's
    catch-all route takes no body parameter), as with `stream()`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            body = message["body"] if "body" in message else b""
            size += len(body)
            if size > cap:
                raise PayloadTooLarge()
            if not (message["more_body"] if "more_body" in message else False):
                if not chunks and body.__class__ is bytes:
                    return body  # the usual body: one message, no copy
                chunks.append(body)
                return b"".join(chunks)
            chunks.append(body)
        elif kind == "http.disconnect":
            raise ClientDisconnected()


# A Content-Length of the body is set by to_response (as Starlette's Response sets it) for every
# status but these, which carry no body (RFC 9110 sections 8.6, 15.2, 15.3.5, 15.4.5).
_NO_LENGTH = frozenset({*range(100, 200), 204, 304})
_new = object.__new__


def to_response(answer: GatewayResponse) -> Response:
    """The answer as the Starlette response the worker's server sends: its fields as wire bytes
    in one list, with no copy of the answer's Headers.

    A bytes body's Response (a DirectResponse, below) is made as `Response(content=body,
    status_code=status)` makes it (the same attributes: tests/unit/test_app_edge.py compares
    them), with the answer's fields after the Content-Length Starlette computes: the
    constructor's three frames and the list it made for its own field, then extended, were
    per request."""
    body = answer.body
    if body.__class__ is bytes or isinstance(body, (bytes, bytearray)):
        response = _new(DirectResponse)
        status = response.status_code = answer.status
        response.background = None
        response.body = body = bytes(body) if body.__class__ is not bytes else body
        response.raw_headers = answer.headers.raw("content-length") if status in _NO_LENGTH \
            else [(b"content-length", b"%d" % len(body)), *answer.headers.raw("content-length")]
        return response
    response = ClosingStreamingResponse(body, status_code=answer.status)
    response.raw_headers += answer.headers.raw()
    return response


class DirectResponse(Response):
    """Starlette's Response of a bytes body, whose body message goes to the server's own send
    when the worker's app gave it (SERVER_SEND, worker_http.py), as ClosingStreamingResponse
    sends its chunks: the start goes through the app's wrappers, which act on it alone; the
    body message passed through each of them on its way, three coroutine calls a request."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        await (scope[SERVER_SEND] if SERVER_SEND in scope else send)(
            {"type": "http.response.body", "body": self.body})
        if self.background is not None:
            await self.background()


class ClosingStreamingResponse(StreamingResponse):
    """Closes the body iterator however the response ends.

    Starlette leaves an iterator it stopped reading (the client disconnected, a send failed)
    suspended until garbage collection; closing it here runs the gateway's `finally` blocks at
    once, which settle the token bill and close the upstream exchange, so the backend stops
    generating for a client that is gone. Shielded: the close must finish even when the
    response task is being cancelled.
    """

    body_send = None  # the server's own send, when the worker's app gave it (worker_http.py)

    async def __call__(self, scope, receive, send) -> None:
        self.body_send = scope.get(SERVER_SEND)
        await super().__call__(scope, receive, send)

    async def stream_response(self, send) -> None:
        """Starlette's stream_response, the body messages sent to `body_send` when there is
        one: the start goes through the app's wrappers, which act on it alone. The loop is
        here, not in a coroutine of its own: each frame around it is resumed once per chunk."""
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            body_send = self.body_send or send
            async for chunk in self.body_iterator:
                # The class first: the gateway's bodies give bytes, and this runs per chunk.
                if chunk.__class__ is not bytes and not isinstance(chunk, (bytes, memoryview)):
                    chunk = chunk.encode(self.charset)  # as Starlette does
                await body_send({"type": "http.response.body", "body": chunk, "more_body": True})
            await body_send({"type": "http.response.body", "body": b"", "more_body": False})
        except GatewayError as error:
            await self._cut(send, error)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()

    async def _cut(self, send, error: GatewayError) -> None:
        """End an answer whose body failed after its headers went out, with one log line.

        Only the body raises a GatewayError here (a send fails with OSError), so the status line
        is gone and no error answer can follow. Let through, the error reached the server, which
        logged it with a traceback and dropped the connection. A chunked body ends here instead
        (its bytes so far are all the client gets; an event stream's client sees no [DONE]). A
        body with a declared length cannot end short: returning leaves the server to close the
        connection, which it notes in one line of its own.
        """
        headers = Headers.from_raw(self.raw_headers)
        log.warning("answer cut after its headers went out: %s, request_id=%s", error.code,
                    headers.get("x-request-id") or "-")
        if "content-length" not in headers:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _not_found(req: Request, message: str) -> Response:
    return _error(req, NotFound(message))


def _misconfigured(req: Request, exc: SettingsError) -> Response:
    log.error("gateway cannot start: %s", exc)  # names the setting; the client is not told
    return _error(req, Misconfigured())


def _error(req: Request, error: GatewayError) -> Response:
    """The JSON error answer of a function that never reached the pipeline."""
    # Imported here: the error renderers pull in the route and wire-format modules, which
    # indexing (every cold start) does not need; the gateway's build loads them anyway.
    from .stages.errors import error_response

    request_id = request_id_from(req.headers.get("x-request-id"))
    answer = error_response(error, request_id)
    answer.headers.set("X-Request-ID", request_id)
    return to_response(answer)
