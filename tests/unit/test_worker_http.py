"""The worker's own HTTP server never redirects on a trailing slash and answers an unroutable
path in the gateway's JSON shape (function_app/worker_http.py; found by make fuzz)."""

import asyncio
import contextlib
import json
import sys
import uuid

import pytest
from azure_functions_runtime import http_v2
from azurefunctions.extensions.http.fastapi import web

from function_app.worker_http import (
    Handshake,
    harden_worker_http,
    lean_handshake,
    release_finished_invocations,
    unroutable,
)
from tests.support.upper_bodies import UpperBodies


def test_the_extensions_app_is_built_without_slash_redirects_and_with_a_json_default():
    import function_app.app  # noqa: F401  (importing the app hardens the extension)

    app = web.WebApp().get_app()
    assert app.router.redirect_slashes is False
    assert app.router.default is unroutable
    harden_worker_http()  # a second call changes nothing
    assert web.WebApp().get_app().router.default is unroutable


async def test_fastapis_docs_paths_reach_the_catch_all():
    """GET /docs, /redoc and /openapi.json went to FastAPI's own pages (the worker's Swagger
    UI), never to the function, whose invocation then waited for a request that never came."""
    import function_app.app  # noqa: F401

    app = web.WebApp()
    reached = []

    async def catch_all(request: web.FastApiRequest):
        reached.append(request.url.path)
        from starlette.responses import Response
        return Response(b"gateway")

    app.route(catch_all)
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        sent = await _call(app.get_app(), "GET", path)
        assert sent[-1]["body"] == b"gateway"
    assert reached == ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"]


async def test_an_unroutable_path_is_a_json_400():
    sent = []

    async def send(message):
        sent.append(message)

    await unroutable({"type": "http", "path": "/a\n/"}, None, send)
    start, body = sent
    assert start["status"] == 400
    assert (b"content-type", b"application/json") in start["headers"]
    error = json.loads(body["body"])["error"]
    assert error["code"] == "invalid_path"
    assert dict(start["headers"])[b"x-request-id"].decode() == error["request_id"]


async def _invocation(coordinator, invocation_id: str, http_first: bool, answer: object) -> object:
    """One HTTP invocation through the worker library's coordinator, as its two sides drive it:
    the invocation waits for the request and sets the function's answer; the HTTP route sets
    the request and waits for the answer. Returns what the route got."""
    request = object()
    if http_first:
        coordinator.set_http_request(invocation_id, request)
    waiting = asyncio.ensure_future(coordinator.get_http_request_async(invocation_id))
    await asyncio.sleep(0)
    if not http_first:
        coordinator.set_http_request(invocation_id, request)
    assert await waiting is request
    route = asyncio.ensure_future(coordinator.await_http_response_async(invocation_id))
    await asyncio.sleep(0)
    coordinator.set_http_response(invocation_id, answer)
    return await route


async def test_the_worker_library_forgets_an_invocation_once_its_answer_is_taken():
    import function_app.app  # noqa: F401  (importing the app releases finished invocations)

    coordinator = http_v2.HttpCoordinator()  # the library's singleton
    release_finished_invocations()  # a second call wraps nothing twice
    ids = [uuid.uuid4().hex for _ in range(40)]
    answers = [object() if n % 4 else ValueError("function failed") for n in range(40)]
    got = await asyncio.gather(*(_invocation(coordinator, i, n % 2 == 0, answers[n])
                                 for n, i in enumerate(ids)))
    assert got == answers  # every route got its own invocation's answer, errors included
    assert not set(ids) & set(coordinator._context_references)  # was: one entry per request


async def test_an_answer_still_waited_for_keeps_its_entry():
    import function_app.app  # noqa: F401

    coordinator = http_v2.HttpCoordinator()
    invocation_id = uuid.uuid4().hex
    coordinator.set_http_request(invocation_id, object())
    route = asyncio.ensure_future(coordinator.await_http_response_async(invocation_id))
    await asyncio.sleep(0)
    assert invocation_id in coordinator._context_references  # the invocation sets it later
    route.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await route
    coordinator.set_http_response(invocation_id, object())  # a late answer finds its entry
    coordinator._context_references.pop(invocation_id)


async def _serve_stream(app, chunks: list[bytes], fail: Exception | None = None):
    """One GET through the ASGI `app` whose route answers with `chunks` streamed (then raises
    `fail`, if given); the messages the server's own `send` got, each with its caller's name."""
    import sys

    from function_app.app import to_response
    from function_app.http.headers import Headers
    from function_app.http.messages import GatewayResponse

    async def body():
        for chunk in chunks:
            yield chunk
        if fail is not None:
            raise fail

    async def route(request: web.FastApiRequest):
        return to_response(GatewayResponse(200, Headers([("x-request-id", "rq-1")]), body()))

    app.api_route("/{path:path}", methods=["GET"])(route)
    got: list[tuple[dict, str]] = []
    gone = asyncio.Event()
    asked = []

    async def receive():
        asked.append(True)
        if len(asked) == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()  # Starlette's disconnect listener: the client stays
        return {"type": "http.disconnect"}

    async def send(message):
        got.append((message, sys._getframe(1).f_code.co_name))

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "http_version": "1.1", "method": "GET", "path": "/s", "raw_path": b"/s",
             "query_string": b"", "headers": [], "client": ("127.0.0.1", 5), "root_path": "",
             "server": ("127.0.0.1", 80), "scheme": "http"}
    await app(scope, receive, send)
    return got


async def test_a_streamed_answers_chunks_go_to_the_servers_send_and_its_start_through_the_app():
    import function_app.app  # noqa: F401

    got = await _serve_stream(web.WebApp().get_app(), [b"data: 1\n\n", b"data: 2\n\n"])
    messages = [m for m, _ in got]
    assert messages[0]["type"] == "http.response.start" and messages[0]["status"] == 200
    assert [(m["body"], m["more_body"]) for m in messages[1:]] == [
        (b"data: 1\n\n", True), (b"data: 2\n\n", True), (b"", False)]
    assert got[0][1] != "stream_response"  # the start: through the app's wrappers (they track it)
    assert {caller for _, caller in got[1:]} == {"stream_response"}  # the chunks: from ours


async def test_a_stream_failing_midway_still_ends_the_documented_way_on_the_direct_path():
    import function_app.app  # noqa: F401
    from function_app.core.errors import UpstreamError

    got = await _serve_stream(web.WebApp().get_app(), [b"data: 1\n\n"], UpstreamError())
    assert [(m.get("body"), m.get("more_body")) for m, _ in got[1:]] == [
        (b"data: 1\n\n", True), (b"", False)]


async def test_an_app_with_middleware_of_its_own_keeps_every_wrapper_on_the_chunks():
    import function_app.app  # noqa: F401

    app = web.WebApp().get_app()

    app.add_middleware(UpperBodies)
    got = await _serve_stream(app, [b"data: a\n\n"])
    assert [m["body"] for m, _ in got[1:]] == [b"DATA: A\n\n", b""]


async def test_with_fastapis_own_telemetry_on_every_chunk_still_passes_its_wrapper():
    """FastAPI's native telemetry turns on when a global OpenTelemetry provider is set (Azure
    Monitor's set-up sets one): its `send` wrapper sees every message and ends the request's
    span at the last body message, so the chunks skip only the wrappers inside it."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import function_app.app  # noqa: F401

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = web.FastAPI(telemetry={"tracer_provider": provider, "metrics": False, "logs": False})
    got = await _serve_stream(app, [b"data: 1\n\n", b"data: 2\n\n"])
    assert [m.get("body") for m, _ in got[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert {caller for _, caller in got} == {"wrapped_send"}  # the telemetry's, for each
    served = [s for s in spans.get_finished_spans()
              if s.attributes.get("http.response.status_code") == 200]
    assert len(served) == 1


def test_the_mirrored_framework_code_is_the_pinned_versions():
    """HardenedFastAPI.__call__ does what FastAPI's and Starlette's __call__ do for an HTTP
    request (and ServerSend's); the coordinator's takes read the entry's fields as the library's
    properties do, and its handshake (lean_handshake) does what its four methods and its
    entry's events do. When any of that code changes, re-read it and update worker_http.py."""
    import hashlib
    import inspect

    from fastapi import FastAPI
    from starlette.applications import Starlette

    def digest(obj) -> str:
        return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]

    assert {"fastapi": digest(FastAPI.__call__), "starlette": digest(Starlette.__call__),
            "coordinator": digest(http_v2.HttpCoordinator),
            "entry": digest(http_v2.BaseContextReference)} == PINNED


# fastapi 0.165.0, starlette 1.10.0, azure-functions-runtime 1.3.0
PINNED = {"fastapi": "0795712e5427892f", "starlette": "5bf3135c4e85b7f5",
          "coordinator": "88b5412ff9bdfe00", "entry": "599f15b952e6cf80"}


async def _serve_twice(app) -> list[list[dict]]:
    """Two GETs through the ASGI `app`, whose route answers with the scope's SERVER_SEND
    presence; the messages of each."""
    from function_app.app import to_response
    from function_app.http.headers import Headers
    from function_app.http.messages import GatewayResponse
    from function_app.worker_http import SERVER_SEND

    async def route(request: web.FastApiRequest):
        has = str(SERVER_SEND in request.scope).encode()
        return to_response(GatewayResponse(200, Headers([("x-request-id", "rq-1")]), has))

    app.api_route("/{path:path}", methods=["GET"])(route)
    answers = []
    for _ in range(2):
        sent: list[dict] = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message, into=sent):
            into.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "http_version": "1.1", "method": "GET", "path": "/s", "raw_path": b"/s",
                 "query_string": b"", "headers": [], "client": ("127.0.0.1", 5),
                 "root_path": "", "server": ("127.0.0.1", 80), "scheme": "http"}
        await app(scope, receive, send)
        answers.append(sent)
    return answers


async def test_later_requests_take_the_one_frame_path_and_answer_as_the_first():
    from fastapi import FastAPI

    import function_app.app  # noqa: F401

    app = web.WebApp().get_app()
    entered = []
    original = FastAPI.__call__

    async def counting(self, scope, receive, send):
        entered.append(scope["path"])
        await original(self, scope, receive, send)

    FastAPI.__call__ = counting
    try:
        first, second = await _serve_twice(app)
    finally:
        FastAPI.__call__ = original
    assert first == second  # the same start and body, fields included
    assert first[0]["headers"] == [(b"content-length", b"4"), (b"x-request-id", b"rq-1")]
    assert first[1]["body"] == b"True"  # SERVER_SEND was in the scope both times
    assert entered == ["/s"]  # FastAPI's own __call__ only for the first (it builds the stack)


async def test_with_native_telemetry_on_every_request_goes_through_fastapis_call():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import function_app.app  # noqa: F401

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = web.FastAPI(telemetry={"tracer_provider": provider, "metrics": False, "logs": False})
    first, second = await _serve_twice(app)
    assert first == second and first[1]["body"] == b"True"
    assert len(spans.get_finished_spans()) >= 2  # a request span for each


async def test_a_take_with_nothing_to_take_is_the_librarys_value_error():
    import function_app.app  # noqa: F401

    coordinator = http_v2.HttpCoordinator()
    invocation_id = uuid.uuid4().hex
    coordinator._context_references[invocation_id] = http_v2.AsyncContextReference()
    with pytest.raises(ValueError, match="No http request"):
        coordinator._pop_http_request(invocation_id)
    with pytest.raises(ValueError, match="No http response"):
        coordinator._pop_http_response(invocation_id)
    assert invocation_id not in coordinator._context_references


async def test_the_request_is_taken_once_and_its_entry_kept_for_the_answer():
    import function_app.app  # noqa: F401

    coordinator = http_v2.HttpCoordinator()
    invocation_id, request = uuid.uuid4().hex, object()
    coordinator.set_http_request(invocation_id, request)
    assert await coordinator.get_http_request_async(invocation_id) is request
    entry = coordinator._context_references[invocation_id]
    assert entry._http_request is None  # taken, as the library's take left it
    with pytest.raises(ValueError):
        coordinator._pop_http_request(invocation_id)
    coordinator.set_http_response(invocation_id, "answer")
    assert await coordinator.await_http_response_async(invocation_id) == "answer"
    assert invocation_id not in coordinator._context_references


async def _call(app, method: str = "GET", path: str = "/s", body: bytes = b"") -> list[dict]:
    """One request through the ASGI `app`; the messages its server got."""
    sent: list[dict] = []
    asked = []

    async def receive():
        asked.append(True)
        if len(asked) == 1:
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays (a streamed answer listens for it)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": b"a=1", "root_path": "",
             "headers": [(b"cookie", b"c=1"), (b"x-a", b"1")], "client": ("127.0.0.1", 5),
             "server": ("127.0.0.1", 80), "scheme": "http"}
    try:
        await app(scope, receive, send)
    except Exception as error:  # ServerErrorMiddleware sends its 500, then re-raises
        sent.append({"raised": type(error).__name__})
    return sent


def _catch_all_app(counted: list):
    """The extension's app with a catch-all as the library registers it; `counted` gets an
    entry each time FastAPI's own handler solves the endpoint's dependencies."""
    import fastapi.routing
    from fastapi import HTTPException

    from function_app.app import to_response
    from function_app.http.headers import Headers
    from function_app.http.messages import GatewayResponse

    async def catch_all(request: web.FastApiRequest):
        if request.url.path == "/boom":
            raise RuntimeError("the function failed")
        if request.url.path == "/http":
            raise HTTPException(status_code=418, detail="teapot")
        if request.url.path == "/stream":
            async def chunks():
                yield b"a"
                yield b"b"
            return to_response(GatewayResponse(200, Headers([("x-s", "1")]), chunks()))
        if request.url.path == "/late":  # a handled exception after the answer has started
            async def failing():
                yield b"a"
                raise HTTPException(status_code=418, detail="late")
            return to_response(GatewayResponse(200, Headers([("x-s", "1")]), failing()))
        fields = [("x-method", request.method), ("x-path", request.path_params["path"]),
                  ("x-body", (await request.body()).decode() or "-"),
                  ("x-cookie", request.cookies.get("c", "-"))]
        return to_response(GatewayResponse(200, Headers(fields), b"ok"))

    app = web.WebApp()
    app.route(catch_all)
    original = fastapi.routing.solve_dependencies

    async def solving(*args, **kwargs):
        counted.append(True)
        return await original(*args, **kwargs)

    return app.get_app(), original, solving


CASES = [("GET", "/s", b""), ("POST", "/p/q", b'{"a": 1}'), ("HEAD", "/h", b""),
         ("DELETE", "/boom", b""), ("GET", "/http", b""), ("GET", "/stream", b""),
         ("CONNECT", "/m", b""), ("GET", "/late", b"")]


async def test_the_catch_all_answers_the_same_through_starlettes_handler():
    """Every kind of answer (plain, HEAD, the function raising, an HTTPException, streamed, a
    method the route does not take) is the same message for message as FastAPI's handler
    gave, and FastAPI's handler no longer runs once the app is past its first request."""
    import fastapi.routing

    import function_app.app  # noqa: F401

    got = {}
    for lean in (True, False):
        counted: list = []
        app, original, solving = _catch_all_app(counted)
        fastapi.routing.solve_dependencies = solving
        try:
            await _call(app)  # the first request builds the stack, through FastAPI's __call__
            counted.clear()
            if not lean:  # every request as FastAPI's __call__ and handler serve it
                app.middleware_stack = app.middleware_stack.app
            got[lean] = [await _call(app, *case) for case in CASES]
        finally:
            fastapi.routing.solve_dependencies = original
        assert bool(counted) is not lean
    assert got[True] == got[False]
    plain, post, head, boom, http, stream, connect, late = got[True]
    assert head[0]["status"] == 200 and dict(head[0]["headers"])[b"x-method"] == b"HEAD"
    assert dict(plain[0]["headers"])[b"x-cookie"] == b"1"
    assert dict(post[0]["headers"])[b"x-path"] == b"p/q"
    assert dict(post[0]["headers"])[b"x-body"] == b'{"a": 1}'
    assert boom[0]["status"] == 500 and boom[-1] == {"raised": "RuntimeError"}
    assert http[0]["status"] == 418
    assert [m.get("body") for m in stream[1:]] == [b"a", b"b", b""]
    assert connect[0]["status"] == 405
    assert late[1]["body"] == b"a" and late[-1] == {"raised": "RuntimeError"}


def test_a_route_with_more_than_a_request_keeps_fastapis_handler():
    from fastapi import Depends

    import function_app.app  # noqa: F401
    from function_app.worker_http import LEAN

    app = web.WebApp().get_app()

    async def only(request: web.FastApiRequest):
        return None

    async def with_query(request: web.FastApiRequest, q: int = 0):
        return None

    async def dependency():
        return 1

    async def depending(request: web.FastApiRequest, one: int = Depends(dependency)):
        return None

    app.api_route("/a", methods=["GET"])(only)
    app.api_route("/b", methods=["GET"])(with_query)
    app.api_route("/c", methods=["GET"], status_code=201)(only)
    app.api_route("/d", methods=["GET"])(depending)
    leaned = {route.path: route.app.__qualname__.startswith("lean_route")
              for route in app.router.routes if route.path in ("/a", "/b", "/c", "/d")}
    assert leaned == {"/a": True, "/b": False, "/c": False, "/d": False}
    assert LEAN == "gateway.lean"


async def test_a_served_request_leaves_no_reference_cycle_through_the_servers_send():
    """The server's `send` is a bound method of its request object, which holds the scope
    (uvicorn's RequestResponseCycle); kept in the scope after the answer, every request was a
    reference cycle of ~25 objects that only the garbage collector freed
    (docs/perf/pass11-gc.md). Reference counting alone frees it now."""
    import gc
    import weakref

    import function_app.app  # noqa: F401
    from function_app.worker_http import SERVER_SEND

    class ServerCycle:  # uvicorn's shape: the scope on the request object, send its method
        def __init__(self):
            self.scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                          "http_version": "1.1", "method": "GET", "path": "/s",
                          "raw_path": b"/s", "query_string": b"", "headers": [],
                          "client": ("127.0.0.1", 5), "root_path": "",
                          "server": ("127.0.0.1", 80), "scheme": "http"}
            self.sent = []

        async def receive(self):
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(self, message):
            self.sent.append(message)

    app = web.WebApp().get_app()

    async def route(request: web.FastApiRequest):
        return web.FastApiResponse(b"ok")

    app.api_route("/{path:path}", methods=["GET"])(route)
    gc.disable()
    try:
        # The first request builds the stack and goes through ServerSend; later ones take the
        # hardened app's one-coroutine path. Both must leave no cycle.
        for _ in range(3):
            server = ServerCycle()
            await app(server.scope, server.receive, server.send)
            assert server.sent[0]["status"] == 200
            assert SERVER_SEND not in server.scope
            gone = weakref.ref(server)
            del server
            assert gone() is None  # freed by reference counting, no collection needed
    finally:
        gc.enable()


def test_a_worker_library_of_another_shape_is_left_as_it_is(monkeypatch):
    """Another version of the worker library (no `_pop_http_*` on its coordinator) keeps its
    own code: nothing is replaced and start-up does not fail."""
    import types

    class HttpCoordinator:
        async def await_http_response_async(self, invoc_id):
            return invoc_id

    fake = types.ModuleType("azure_functions_runtime.http_v2")
    fake.HttpCoordinator = HttpCoordinator
    monkeypatch.setitem(sys.modules, "azure_functions_runtime.http_v2", fake)
    release_finished_invocations()
    lean_handshake()
    assert not hasattr(HttpCoordinator, "_pop_http_response")
    assert not hasattr(HttpCoordinator, "set_http_request")
    assert not hasattr(HttpCoordinator, "_pop_http_request")


async def test_the_handshake_keeps_the_librarys_events_and_errors():
    """lean_handshake's entry: whichever side comes first makes it, an event once set stays
    set (a wait after it returns at once), every waiter of a side is woken, a cancelled wait
    leaves the entry and its request, and the library's KeyErrors for an answer without an
    entry."""
    import function_app.app  # noqa: F401  (importing the app makes the handshake lean)

    coordinator = http_v2.HttpCoordinator()
    lean_handshake()  # a second call wraps nothing twice
    assert coordinator.set_http_request.__func__ is http_v2.HttpCoordinator.set_http_request
    invocation_id, request, answer = uuid.uuid4().hex, object(), object()
    with pytest.raises(KeyError, match="No context reference"):
        coordinator.set_http_response(invocation_id, answer)
    with pytest.raises(KeyError, match="No context reference"):
        await coordinator.await_http_response_async(invocation_id)

    cancelled = asyncio.ensure_future(coordinator.get_http_request_async(invocation_id))
    await asyncio.sleep(0)
    entry = coordinator._context_references[invocation_id]
    assert isinstance(entry, Handshake) and len(entry.waiters) == 1
    cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled
    assert entry.waiters == [] and coordinator._context_references[invocation_id] is entry

    routes = [asyncio.ensure_future(coordinator.get_http_request_async(invocation_id))
              for _ in range(2)]
    await asyncio.sleep(0)
    coordinator.set_http_request(invocation_id, request)
    first = await routes[0]
    assert first is request
    with pytest.raises(ValueError, match="No http request"):  # the second take finds it taken
        await routes[1]
    with pytest.raises(ValueError, match="No http request"):  # set stays set: no wait
        await coordinator.get_http_request_async(invocation_id)

    coordinator.set_http_response(invocation_id, answer)  # the answer before the route waits
    assert await coordinator.await_http_response_async(invocation_id) is answer
    assert invocation_id not in coordinator._context_references
