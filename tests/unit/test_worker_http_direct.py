"""worker_http.CatchAll: a LEAN request that the worker app's one route, the lean catch-all,
matches fully goes straight to it, with the scope and the answers the full stack gives; any
other request takes the stack as before."""

import hashlib
import inspect

import pytest
from azurefunctions.extensions.http.fastapi import web
from fastapi import FastAPI, HTTPException
from fastapi._body_limit import AppBodyLimitMiddleware, wrap_app_with_body_limit
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.routing import APIRoute, APIRouter, _route_selected
from fastapi.telemetry._asgi import ExceptionTelemetryMiddleware
from starlette._exception_handler import _lookup_exception_handler, wrap_app_handling_exceptions
from starlette._utils import get_route_path
from starlette.convertors import PathConvertor, StringConvertor
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import Route, Router, request_response

from function_app.app import to_response
from function_app.http.headers import Headers
from function_app.http.messages import GatewayResponse
from function_app.worker_http import CatchAll

SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
         "http_version": "1.1", "method": "POST", "path": "/infer/x", "raw_path": b"/infer/x",
         "query_string": b"", "headers": [], "client": ("127.0.0.1", 5), "root_path": "",
         "server": ("127.0.0.1", 80), "scheme": "http"}


def hardened_app(answer=None):
    """The worker's app as the extension builds it, its catch-all answering with `answer`
    (a callable of the request) or a 200 naming what the scope held; the scopes seen."""
    import function_app.app  # noqa: F401  (importing the app hardens the extension)

    worker_app = web.WebApp()
    seen = []

    async def catch_all(request: web.FastApiRequest):
        scope = request.scope
        seen.append({k: scope.get(k) for k in ("endpoint", "path_params", "route", "router")}
                    | {"handlers": "starlette.exception_handlers" in scope})
        if answer is not None:
            return answer(request)
        return to_response(GatewayResponse(200, Headers([("x-request-id", "rq-1")]), b"ok"))

    worker_app.route(catch_all)  # as the worker library registers its catch-all
    return worker_app.get_app(), seen


async def serve(app, sent: list[dict] | None = None, **changes) -> list[dict]:
    """The messages `app` sends for SCOPE with `changes`, into `sent` when given (a caller
    that expects the app to raise still has what it sent)."""
    sent = [] if sent is None else sent

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app({**SCOPE, **changes}, receive, send)
    return sent


@pytest.fixture
def stack_entered(monkeypatch):
    """How many requests went through ExceptionMiddleware (the stack under CatchAll)."""
    entered = []
    original = ExceptionMiddleware.__call__

    async def counting(self, scope, receive, send):
        entered.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(ExceptionMiddleware, "__call__", counting)
    return entered


async def test_a_lean_request_goes_straight_to_the_catch_all_with_the_routers_scope(
        stack_entered):
    app, seen = hardened_app()
    first = await serve(app)  # builds the stack: through FastAPI's own __call__, all of it
    second = await serve(app)
    assert first == second
    assert second[0]["status"] == 200 and second[1]["body"] == b"ok"
    assert stack_entered == ["/infer/x"]  # the first request only
    assert isinstance(app.middleware_stack.app.app, CatchAll)
    assert seen[0] == seen[1]
    route = seen[1]["route"]
    assert isinstance(route, APIRoute) and route.path == "/{path:path}"
    assert seen[1]["endpoint"] is route.endpoint
    assert seen[1]["path_params"] == {"path": "infer/x"}
    assert seen[1]["router"] is app.router and seen[1]["handlers"]


async def test_an_http_exception_is_answered_by_the_apps_handler_on_both_paths(stack_entered):
    def refuse(request):
        raise HTTPException(418, "teapot", headers={"x-why": "tea"})

    app, _ = hardened_app(refuse)
    first, second = await serve(app), await serve(app)
    assert first == second
    assert second[0]["status"] == 418 and (b"x-why", b"tea") in second[0]["headers"]
    assert second[1]["body"] == b'{"detail":"teapot"}'
    assert len(stack_entered) == 1


async def test_an_unhandled_error_is_the_500_and_raised_on_both_paths(stack_entered):
    def fail(request):
        raise ValueError("boom")

    app, _ = hardened_app(fail)
    answers = []
    for _ in range(2):
        sent: list[dict] = []
        with pytest.raises(ValueError, match="boom"):
            await serve(app, sent)
        answers.append(sent)
    assert answers[0] == answers[1]
    assert answers[1][0]["status"] == 500 and answers[1][1]["body"] == b"Internal Server Error"
    assert len(stack_entered) == 1


@pytest.mark.parametrize("changes,status", [
    ({"path": "/a\nb", "raw_path": b"/a\nb"}, 400),  # the catch-all's pattern does not match
    ({"method": "CONNECT"}, 405),  # matched, but not its methods
])
async def test_a_request_the_route_does_not_fully_match_takes_the_stack(stack_entered, changes,
                                                                         status):
    app, _ = hardened_app()
    await serve(app)
    sent = await serve(app, **changes)
    assert sent[0]["status"] == status
    assert len(stack_entered) == 2


async def test_a_root_path_or_a_second_route_takes_the_stack(stack_entered):
    app, _ = hardened_app()
    await serve(app)
    await serve(app, root_path="/base", path="/base/infer/x")
    assert len(stack_entered) == 2

    async def other(request: web.FastApiRequest):
        return to_response(GatewayResponse(200, Headers(), b"other"))

    app.api_route("/other", methods=["GET"])(other)
    sent = await serve(app)
    assert sent[1]["body"] == b"ok" and len(stack_entered) == 3


async def _answers_ok_through_the_stack(app, stack_entered) -> None:
    """`app` with a POST catch-all answering 200 "ok": two requests, both through the stack."""

    async def catch_all(request: web.FastApiRequest):
        return to_response(GatewayResponse(200, Headers(), b"ok"))

    app.api_route("/{path:path}", methods=["POST"])(catch_all)
    for _ in range(2):
        assert (await serve(app))[1]["body"] == b"ok"
    assert len(stack_entered) == 2


async def test_with_fastapis_own_telemetry_on_requests_take_the_stack(stack_entered):
    from opentelemetry.sdk.trace import TracerProvider

    import function_app.app  # noqa: F401

    app = web.FastAPI(telemetry={"tracer_provider": TracerProvider(), "metrics": False,
                                 "logs": False})

    await _answers_ok_through_the_stack(app, stack_entered)


async def test_an_app_with_a_body_limit_keeps_its_stack(stack_entered):
    import function_app.app  # noqa: F401

    app = web.FastAPI(max_body_size=10)

    await _answers_ok_through_the_stack(app, stack_entered)
    assert not isinstance(app.middleware_stack.app.app, CatchAll)


def test_the_layers_catch_all_stands_in_for_are_the_pinned_versions():
    """CatchAll does for its requests what these do (see its docstring); when any of them
    changes, re-read it and update worker_http.py."""

    def digest(obj) -> str:
        return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]

    got = {name: digest(obj) for name, obj in (
        ("build_middleware_stack", FastAPI.build_middleware_stack),
        ("exception_telemetry", ExceptionTelemetryMiddleware.__call__),
        ("body_limit", AppBodyLimitMiddleware.__call__),
        ("wrap_body_limit", wrap_app_with_body_limit),
        ("exceptions", ExceptionMiddleware.__call__),
        ("exit_stack", AsyncExitStackMiddleware.__call__),
        ("router_call", Router.__call__), ("api_router_app", APIRouter.app),
        ("api_route_matches", APIRoute.matches), ("api_route_handle", APIRoute.handle),
        ("route_matches", Route.matches), ("route_handle", Route.handle),
        ("route_path", get_route_path), ("route_selected", _route_selected),
        # worker_http.request_handler: Starlette's handler of an async endpoint, in one
        ("request_response", request_response),
        ("wrap_exceptions", wrap_app_handling_exceptions),
        ("lookup_handler", _lookup_exception_handler),
        # CatchAll takes a text parameter as matched (their convert gives it back)
        ("string_convert", StringConvertor.convert), ("path_convert", PathConvertor.convert))}
    assert got == PINNED


# fastapi 0.165.0, starlette 1.10.0
PINNED = {
    "build_middleware_stack": "4d76b65957b20f90", "exception_telemetry": "f00be47366e913bf",
    "body_limit": "c977e4417a3bcdf8", "wrap_body_limit": "2b64df80710ad3e3",
    "exceptions": "c0b5cb274777981d", "exit_stack": "8868205fc6307989",
    "router_call": "e93fc286faeae611", "api_router_app": "89d3c3a8083f410e",
    "api_route_matches": "b97ea9942fe14d7e", "api_route_handle": "6522436750d8e310",
    "route_matches": "4de50d376de04a00", "route_handle": "96b34240b73daf60",
    "route_path": "243011d2a68ca7fe", "route_selected": "02677caa9eab1b71",
    "request_response": "e586ed68218dff19", "wrap_exceptions": "d5e41f0fa794c0a8",
    "lookup_handler": "14e3da74ab6e5609", "string_convert": "1fda8183a7fb0a7c",
    "path_convert": "1dffb91e53b216e0",
}


async def test_a_route_whose_app_was_replaced_after_takes_the_stack(stack_entered):
    app, _ = hardened_app()
    await serve(app)
    route = app.router.routes[0]
    replaced = []
    lean_app = route.app

    async def wrapper(scope, receive, send):
        replaced.append(scope["path"])
        await lean_app(scope, receive, send)

    route.app = wrapper
    sent = await serve(app)
    assert sent[1]["body"] == b"ok" and replaced == ["/infer/x"] and len(stack_entered) == 2


async def test_a_parameter_is_converted_on_the_lean_path_as_the_router_converts_it(
        stack_entered):
    """CatchAll takes a text parameter as matched (its convertor gives it back as it is) and
    converts any other, as the router does: the same path_params on both paths."""
    import function_app.app  # noqa: F401  (importing the app hardens the extension)

    app = web.WebApp().get_app()
    seen = []

    async def endpoint(request: web.FastApiRequest):
        seen.append(dict(request.path_params))
        return to_response(GatewayResponse(200, Headers([("x-request-id", "rq-1")]), b"ok"))

    app.api_route("/items/{n:int}/{rest:path}", methods=["POST"])(endpoint)
    for _ in range(2):
        sent = await serve(app, path="/items/42/a/b", raw_path=b"/items/42/a/b")
        assert sent[0]["status"] == 200
    assert isinstance(app.middleware_stack.app.app, CatchAll)
    assert seen == [{"n": 42, "rest": "a/b"}] * 2 and len(stack_entered) == 1
