"""Hardening of the worker's own HTTP server (azurefunctions-extensions-http-fastapi).

The extension serves every HTTP function through one FastAPI catch-all, `/{path:path}`, whose
pattern does not match a path holding a newline (Starlette compiles it without DOTALL). An
unmatched request then got FastAPI's slash redirect, a 307 whose Location is built from the
client's Host header, or a plain-text 404; the gateway's pipeline never saw it. Found by
`make fuzz`. The worker builds that app after it has indexed (imported) this app, from the
`FastAPI` name in the extension's `web` module, so that name is wrapped here: no slash
redirects, no docs pages of FastAPI's own (GET /docs, /redoc and /openapi.json answered with
them, not with the gateway), and a request the catch-all cannot match gets the gateway's JSON
400.

The worker library (azure-functions-runtime 1.3.0, the latest) also keeps one entry per HTTP
invocation in its coordinator (`http_v2.HttpCoordinator._context_references`: the invocation's
two events and their queues) and never removes it: about 5 objects and 0.5-1 KB a request, for
the life of the worker, so a million requests held most of a 2 GB instance and every full
garbage collection walked them. `release_finished_invocations` drops the entry as the HTTP
side takes the function's answer, the entry's last use: the library's `_pop_http_response`,
which cleared the answer through a property setter (setting an event already set), now pops
the entry and returns the answer, with the same ValueError when there is none.

A streamed answer's chunks skip the app's send wrappers: the outermost layer of the hardened
app's middleware stack (`ServerSend`) puts the `send` it gets in the scope (`SERVER_SEND`), and
app.ClosingStreamingResponse sends its body messages there. Every wrapper inside it
(ServerErrorMiddleware, the two exception handlers' `sender`) acts on `http.response.start`
only, which still goes through them; per chunk they were three coroutine calls of the worker's
Python (load/profile_streams.py --cprofile, docs/perf/pass7-streams.md). An app given middleware
of its own (none is) keeps them all. The hardened app's own `__call__` does, for an HTTP request
while FastAPI's native telemetry is off, what FastAPI's, Starlette's and ServerSend's `__call__`
do, in one coroutine instead of three (their code is FastAPI 0.165's and Starlette 1.10's;
tests/unit/test_worker_http.py fails when either changes); any other request takes theirs.
The key leaves the scope when the app is done with the request, on both paths: the server's
request object holds the scope, so kept, it made a reference cycle (docs/perf/pass11-gc.md).

The catch-all itself (the library's `catch_all(request)`: it hands the request over and returns
the function's answer) was served by FastAPI's route handler: dependency solving (cookies and
query parsed for a function that takes only the request), two exit stacks, telemetry look-ups,
about 125 Python calls a request (load/bench_http_edge.py). A route whose endpoint takes only
a Request, added with nothing but its methods, is served on the fast path above as Starlette's
`request_response` serves such an endpoint (the same Request, the same exception handling,
the answer sent as returned; in one coroutine, `request_handler`); while FastAPI's native
telemetry runs, FastAPI's handler, which it observes, serves it as before (`lean_route`). On
the fast path, `CatchAll`, under ServerErrorMiddleware, hands a request that route fully
matches straight to it: the five layers between did nothing for it (see its docstring).
FastAPI's "is native telemetry on?" is told from the provider globals and the environment's
dict (`telemetry_enabled`): its own method cost ~13 us a request (docs/perf/pass12-edge.md).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable

from azurefunctions.extensions.http.fastapi import web
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.routing import APIRoute, APIRouter
from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.convertors import PathConvertor, StringConvertor
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.routing import request_response

try:  # FastAPI's own layers of its stack (private modules): without them, no CatchAll
    from fastapi._body_limit import AppBodyLimitMiddleware
    from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
except ImportError:  # pragma: no cover  # another FastAPI: its stack is left as it is
    AppBodyLimitMiddleware = ExceptionTelemetryMiddleware = None

SERVER_SEND = "gateway.server_send"  # the scope key of the server's own `send`
LEAN = "gateway.lean"  # in the scope of a request the fast path serves (no native telemetry)
_FASTAPI_SCOPE = "fastapi"  # FastAPI's own scope entry (routes included from other routers)
# Convertors whose `convert` gives a matched str back as it is (Starlette's str and path).
_AS_MATCHED = frozenset({StringConvertor, PathConvertor})


def harden_worker_http() -> None:
    """Idempotent; call at import of the app, before the worker starts its HTTP server."""
    release_finished_invocations()
    lean_handshake()
    original = web.FastAPI
    if getattr(original, "gateway_hardened", False):
        return

    class HardenedFastAPI(original):  # type: ignore[valid-type,misc]
        def build_middleware_stack(self):
            stack = super().build_middleware_stack()
            # Only the stack whose wrappers are known (above); Starlette builds it once, at the
            # first request, and refuses middleware added after that.
            if self.user_middleware:
                return stack
            direct_to_catch_all(stack, self.router)
            return ServerSend(stack)

        async def __call__(self, scope, receive, send) -> None:
            stack = self.middleware_stack
            if stack.__class__ is ServerSend and scope["type"] == "http" and not self.root_path \
                    and "fastapi.telemetry" not in scope and not telemetry_enabled(self):
                scope["app"] = self  # Starlette's
                scope[SERVER_SEND] = send  # ServerSend's
                scope[LEAN] = True
                try:
                    await stack.app(scope, receive, send)
                finally:
                    scope.pop(SERVER_SEND, None)  # see ServerSend.__call__
            else:  # the first request (no stack yet), native telemetry, a root path, lifespan
                await super().__call__(scope, receive, send)

        def api_route(self, path, **kwargs):
            register = super().api_route(path, **kwargs)
            if set(kwargs) - {"methods"} or self.router.dependencies:
                return register  # FastAPI's handler has work to do for such a route

            def decorator(func):
                registered = register(func)
                for route in self.router.routes:
                    if isinstance(route, APIRoute) and route.endpoint is func \
                            and route.path == path and not route.dependencies:
                        lean_route(route)
                return registered

            return decorator

    def factory(*args, **kwargs):
        # No docs pages: FastAPI's /docs, /redoc and /openapi.json came before the catch-all,
        # so those paths got the worker's Swagger UI and the function's invocation, started by
        # the host, never received its request.
        app = HardenedFastAPI(*args, **{**kwargs, "redirect_slashes": False, "docs_url": None,
                                        "redoc_url": None, "openapi_url": None})
        app.router.default = unroutable
        return app

    factory.gateway_hardened = True  # type: ignore[attr-defined]
    web.FastAPI = factory


def _provider_modules() -> tuple:
    """The modules of OpenTelemetry's three global providers (FastAPI's telemetry has loaded
    them), and the encoded names of their three environment variables; () when their shape is
    not the one `telemetry_enabled` reads."""
    try:
        import opentelemetry._logs._internal as logs
        import opentelemetry.metrics._internal as metrics
        import opentelemetry.trace as trace

        names = (trace.OTEL_PYTHON_TRACER_PROVIDER, metrics.OTEL_PYTHON_METER_PROVIDER,
                 logs._OTEL_PYTHON_LOGGER_PROVIDER)
        keys = tuple(os.environ.encodekey(name) for name in names)  # type: ignore[attr-defined]
        for module, attribute in ((trace, "_TRACER_PROVIDER"), (metrics, "_METER_PROVIDER"),
                                  (logs, "_LOGGER_PROVIDER")):
            getattr(module, attribute)
        os.environ._data  # type: ignore[attr-defined]  # noqa: B018
    except (ImportError, AttributeError):
        return ()
    return trace, metrics, logs, keys


_PROVIDERS = _provider_modules()


def telemetry_enabled(app) -> bool:
    """What `app._native_telemetry.enabled()` answers, without its cost in the usual case.

    FastAPI asks it on every request: each provider's getter, and `name in os.environ` (a few
    Python frames and a KeyError raised and caught, each), about 13 us a request. While no
    global provider is set, no provider is named in the environment (the getters would load
    it) and the app's telemetry config names none, every clause of its answer is False; that
    is told here from three module attributes and a probe of the environment's own dict. In
    any other case FastAPI's method answers (it then loads a provider named in the
    environment, as before)."""
    if _PROVIDERS:
        trace, metrics, logs, (traces, meters, loggers) = _PROVIDERS
        config = app._native_telemetry.config
        environ = os.environ._data  # type: ignore[attr-defined]  # what `in os.environ` probes
        if trace._TRACER_PROVIDER is None and metrics._METER_PROVIDER is None \
                and logs._LOGGER_PROVIDER is None and traces not in environ \
                and meters not in environ and loggers not in environ \
                and config["tracer_provider"] is None and config["meter_provider"] is None \
                and config["logger_provider"] is None:
            return False
    return app._native_telemetry.enabled()


def lean_route(route: APIRoute) -> None:
    """Serve `route` as Starlette serves an endpoint of one Request when the scope is LEAN and
    its endpoint takes only a Request; otherwise leave it to FastAPI's handler."""
    parameters = list(inspect.signature(route.endpoint).parameters.values())
    if len(parameters) != 1 or not (isinstance(parameters[0].annotation, type)
                                    and issubclass(parameters[0].annotation, Request)):
        return
    endpoint = route.endpoint
    fastapi_app = route.app
    starlette_app = request_handler(endpoint) if is_async_callable(endpoint) \
        else request_response(endpoint)

    async def app(scope, receive, send) -> None:
        await (starlette_app if LEAN in scope else fastapi_app)(scope, receive, send)

    route.app = app
    # CatchAll goes straight to Starlette's handler while `app` is still the route's.
    route.gateway_lean = (app, starlette_app)  # type: ignore[attr-defined]


def request_handler(endpoint) -> Callable[[dict, Callable, Callable], Awaitable[None]]:
    """What Starlette's `request_response(endpoint)` serves an async endpoint with, in one
    coroutine: its `app` made the Request and ran `wrap_app_handling_exceptions` around an
    inner `app`, whose `wrapped_app` awaited it with the `sender` that notes the start of the
    answer; three coroutines and two closures a request, each frame resumed at every wait
    below (~8k instructions a request, callgrind). The same Request, answer and exception
    handling (their code is Starlette 1.10's: tests/unit/test_worker_http_direct.py pins it)."""

    async def app(scope, receive, send) -> None:
        request = Request(scope, receive, send)
        started = False

        def sender(message) -> Awaitable[None]:  # `send`'s awaitable: no frame of its own
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            return send(message)

        try:
            response = await endpoint(request)
            await response(scope, receive, sender)
        except Exception as exc:
            handlers, statuses = scope["starlette.exception_handlers"] \
                if "starlette.exception_handlers" in scope else ({}, {})
            handler = statuses.get(exc.status_code) if isinstance(exc, HTTPException) else None
            if handler is None:
                handler = _lookup_exception_handler(handlers, exc)
            if handler is None:
                raise exc
            if started:
                raise RuntimeError(
                    "Caught handled exception, but response already started.") from exc
            if is_async_callable(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
            if response is not None:
                await response(scope, receive, sender)
            exc.__traceback__ = None  # as Starlette: a reused exception gathers tracebacks

    return app


def direct_to_catch_all(stack, router) -> None:
    """Put a CatchAll between `stack` (the ServerErrorMiddleware FastAPI built) and the layers
    under it, when they are the ones CatchAll stands in for; otherwise change nothing."""
    if ExceptionTelemetryMiddleware is None:
        return
    telemetry = stack.app if stack.__class__ is ServerErrorMiddleware else None
    limit = telemetry.app if telemetry.__class__ is ExceptionTelemetryMiddleware else None
    exceptions = limit.app if limit.__class__ is AppBodyLimitMiddleware else None
    exits = exceptions.app if exceptions.__class__ is ExceptionMiddleware else None
    if exits.__class__ is AsyncExitStackMiddleware and exits.app is router \
            and isinstance(router, APIRouter) and router.middleware_stack == router.app:
        stack.app = CatchAll(telemetry, router, exceptions)


class CatchAll:
    """Under ServerErrorMiddleware: a LEAN request (worker_http.py's fast path) that the
    router's one route, the lean catch-all, matches fully goes to that route at once; any
    other request goes on through the stack below (`app`), as before.

    What the layers skipped do for such a request, done here or not needed:
    - ExceptionTelemetryMiddleware records an exception in FastAPI's native telemetry, which
      is off for a LEAN request ("fastapi.telemetry" is not in its scope): nothing.
    - AppBodyLimitMiddleware passes a request on unchanged when no body limit is set (FastAPI
      then wraps nothing, and no limit key is in the scope): nothing.
    - ExceptionMiddleware puts the app's exception handlers in the scope (here too) and
      handles what escapes its app; the route's own wrapper (Starlette's request handler)
      handles the same exceptions with the same handlers, and what it lets through the outer
      one let through as well.
    - AsyncExitStackMiddleware's stack closes the files FastAPI's request handler opens while
      parsing forms; the lean route is served by Starlette's, which opens none.
    - The router: `router` in the scope, the route's endpoint, path parameters and the route
      (here, from the same regex and convertors); form limits (none set, else the stack) and
      the route-selected telemetry hook (off).
    Their code is FastAPI 0.165's and Starlette 1.10's (tests/unit/test_worker_http_direct.py
    fails when any of it changes). About 30 Python calls a request."""

    __slots__ = ("_handlers", "_router", "app")

    def __init__(self, app, router, exceptions) -> None:
        self.app = app  # the stack under ServerErrorMiddleware (walked by `.app`, see ServerSend)
        self._router = router
        # What ExceptionMiddleware puts in each scope: its two tables, made once here (the
        # same dicts, so a handler it is given later is seen as it would see it).
        self._handlers = (exceptions._exception_handlers, exceptions._status_handlers)

    def __call__(self, scope, receive, send) -> Awaitable[None]:
        """The awaitable that serves the request (not a coroutine of its own: the handler's or
        the stack's is the one awaited, a frame fewer per request, resumed at every wait)."""
        routes = self._router.routes
        if LEAN in scope and len(routes) == 1 and _FASTAPI_SCOPE not in scope \
                and not (scope["root_path"] if "root_path" in scope else "") \
                and not self._router.form_limits:
            route = routes[0]
            lean = getattr(route, "gateway_lean", None)
            matched = route.path_regex.match(scope["path"]) \
                if lean is not None and route.app is lean[0] else None
            if matched is not None and (not route.methods or scope["method"] in route.methods):
                params = dict(scope["path_params"]) if "path_params" in scope else {}
                convertors = route.param_convertors
                for key, value in matched.groupdict().items():
                    convertor = convertors[key]
                    # A text parameter's convertor gives the matched text itself: no call.
                    params[key] = value if convertor.__class__ in _AS_MATCHED \
                        else convertor.convert(value)
                if "router" not in scope:
                    scope["router"] = self._router
                scope["endpoint"] = route.endpoint
                scope["path_params"] = params
                scope["route"] = route
                scope["starlette.exception_handlers"] = self._handlers
                return lean[1](scope, receive, send)  # what route.app runs for a LEAN scope
        return self.app(scope, receive, send)


class ServerSend:
    """The outermost layer of the app's middleware stack: puts the `send` it is given in the
    scope (SERVER_SEND). That is the server's own, or FastAPI's native telemetry's wrapper
    when that is on (a global OpenTelemetry provider is set, as Azure Monitor's set-up does):
    the telemetry sees every message still, and ends its span at the last body message.
    `app` is the stack within, for code that walks a stack by `.app` (FastAPI looks for the
    legacy OpenTelemetry middleware that way)."""

    __slots__ = ("app",)

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        scope[SERVER_SEND] = send
        try:
            await self.app(scope, receive, send)
        finally:
            # The server's send is a bound method of its request object, which holds this
            # scope: left here, each request was a reference cycle (~25 objects with FastAPI's
            # exit stacks) that only the garbage collector freed (docs/perf/pass11-gc.md).
            scope.pop(SERVER_SEND, None)


async def unroutable(scope, receive, send) -> None:
    """The gateway's error shape for a path the worker's router cannot match."""
    request_id = uuid.uuid4().hex
    body = json.dumps({"error": {"code": "invalid_path", "request_id": request_id,
                                 "message": "The request path cannot be routed."}}).encode()
    await send({"type": "http.response.start", "status": 400,
                "headers": [(b"content-type", b"application/json"),
                            (b"x-request-id", request_id.encode())]})
    await send({"type": "http.response.body", "body": body})


def release_finished_invocations() -> None:
    """Idempotent: the coordinator forgets an invocation as its answer is taken.

    The HTTP side (the worker's catch-all route) takes the answer after the invocation has
    set it, and the invocation runs no further step on the entry after setting it without
    first returning to the event loop; so nothing reads the entry after it is gone. A wait
    that is cancelled leaves the entry, as before. The library has loaded its module before
    it imports the app; elsewhere (another worker, a bare `import main`) there is nothing to
    release, and importing it here would only slow a cold start.

    Both takes (the invocation's of the request, the route's of the answer) read and clear the
    entry's field directly: the library's went through the property pair, whose setter sets
    the field's event again (it is already set: the take waited for it), three Python calls
    each. The same ValueError when there is nothing to take."""
    module = sys.modules.get("azure_functions_runtime.http_v2")
    coordinator = getattr(module, "HttpCoordinator", None)
    take = getattr(coordinator, "_pop_http_response", None)
    if take is None or getattr(take, "gateway_releases", False) \
            or not hasattr(coordinator, "_pop_http_request"):
        return  # not this library's shape, or already done

    def _pop_http_request(self, invoc_id):
        entry = self._context_references[invoc_id]
        request = entry._http_request
        if request is None:
            raise ValueError(f"No http request found for invocation {invoc_id}")
        entry._http_request = None
        return request

    def _pop_http_response(self, invoc_id):
        response = self._context_references.pop(invoc_id)._http_response
        if response is None:
            raise ValueError(f"No http response found for invocation {invoc_id}")
        return response

    _pop_http_response.gateway_releases = True  # type: ignore[attr-defined]
    coordinator._pop_http_request = _pop_http_request
    coordinator._pop_http_response = _pop_http_response


class Handshake:
    """One invocation's entry in the worker library's coordinator, as `lean_handshake` makes
    it: what the library's AsyncContextReference holds for the HTTP side (the request, then the
    function's answer, in the same `_http_request` and `_http_response` fields the takes above
    read), with a flag for each where it kept an asyncio.Event, and the futures of whoever
    waits for one (asyncio.Event's own way: a flag, and a future per waiter)."""

    __slots__ = ("_http_request", "_http_response", "request_set", "response_set", "waiters")

    def __init__(self) -> None:
        self._http_request = self._http_response = None
        self.request_set = self.response_set = False  # each event, set: it stays set
        self.waiters: list[tuple[bool, asyncio.Future]] | None = None  # (for the answer?, future)

    def waiter(self, answer: bool) -> asyncio.Future:
        """A future that `wake(answer)` resolves (Event.wait's), registered here."""
        waiter = asyncio.get_running_loop().create_future()
        if self.waiters is None:
            self.waiters = []
        self.waiters.append((answer, waiter))
        return waiter

    def forget(self, answer: bool, waiter: asyncio.Future) -> None:
        self.waiters.remove((answer, waiter))  # type: ignore[union-attr]

    def wake(self, answer: bool) -> None:
        """Event.set's: every waiter of that side still waiting gets its result."""
        if self.waiters:
            for side, waiter in self.waiters:
                if side is answer and not waiter.done():
                    waiter.set_result(True)


def lean_handshake() -> None:
    """Idempotent: the coordinator's four handshake methods, on a `Handshake` entry.

    The library's entry (AsyncContextReference) made two asyncio.Events per invocation and went
    through property pairs and `super()` inits; its four methods probed the entries' dict twice
    each. Each invocation (the HTTP route: set the request, wait for the answer; the
    invocation: wait for the request, set the answer) cost ~310 Python bytecodes of the worker
    library's and asyncio's (load/instructions_per_request.py --bytecodes). These do the same:
    the same entry made by whichever side comes first, the same KeyErrors and ValueErrors,
    an event that once set stays set, every waiter woken, a cancelled wait leaving the entry
    (tests/unit/test_worker_http.py; the library's class is pinned there). Only with the takes
    above in place, which read both kinds of entry."""
    module = sys.modules.get("azure_functions_runtime.http_v2")
    coordinator = getattr(module, "HttpCoordinator", None)
    if coordinator is None or not all(hasattr(coordinator, name) for name in (
            "set_http_request", "set_http_response", "get_http_request_async",
            "await_http_response_async")) \
            or getattr(coordinator.set_http_request, "gateway_lean", False) \
            or not getattr(getattr(coordinator, "_pop_http_response", None), "gateway_releases",
                           False):
        return  # not this library's shape (or its takes not released), or already done

    def set_http_request(self, invoc_id, http_request):
        references = self._context_references
        entry = references[invoc_id] if invoc_id in references \
            else references.setdefault(invoc_id, Handshake())
        entry._http_request = http_request
        entry.request_set = True
        entry.wake(False)

    def set_http_response(self, invoc_id, http_response):
        references = self._context_references
        if invoc_id not in references:
            raise KeyError(f"No context reference found for invocation {invoc_id}")
        entry = references[invoc_id]
        entry._http_response = http_response
        entry.response_set = True
        entry.wake(True)

    async def get_http_request_async(self, invoc_id):
        references = self._context_references
        entry = references[invoc_id] if invoc_id in references \
            else references.setdefault(invoc_id, Handshake())
        if not entry.request_set:
            waiter = entry.waiter(False)
            try:
                await waiter
            finally:
                entry.forget(False, waiter)
        return self._pop_http_request(invoc_id)

    async def await_http_response_async(self, invoc_id):
        references = self._context_references
        if invoc_id not in references:
            raise KeyError(f"No context reference found for invocation {invoc_id}")
        entry = references[invoc_id]
        if not entry.response_set:
            waiter = entry.waiter(True)
            try:
                await waiter
            finally:
                entry.forget(True, waiter)
        return self._pop_http_response(invoc_id)

    set_http_request.gateway_lean = True  # type: ignore[attr-defined]
    coordinator.set_http_request = set_http_request
    coordinator.set_http_response = set_http_response
    coordinator.get_http_request_async = get_http_request_async
    coordinator.await_http_response_async = await_http_response_async
