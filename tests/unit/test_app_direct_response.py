"""A bytes answer's body message goes to the server's own send (SERVER_SEND) when the worker's
app gave one, its start through the app's wrappers; an app with middleware of its own, or
without the key, gets both through `send` (app.DirectResponse)."""

import asyncio
import sys

from azurefunctions.extensions.http.fastapi import web

from function_app.app import DirectResponse, to_response
from function_app.http.headers import Headers
from function_app.http.messages import GatewayResponse
from function_app.worker_http import SERVER_SEND
from tests.support.upper_bodies import UpperBodies

SCOPE = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
         "http_version": "1.1", "method": "GET", "path": "/s", "raw_path": b"/s",
         "query_string": b"", "headers": [], "client": ("127.0.0.1", 5), "root_path": "",
         "server": ("127.0.0.1", 80), "scheme": "http"}


async def _serve_bytes(app, body: bytes = b"hello") -> list[tuple[dict, str]]:
    """One GET through the ASGI `app`, whose route answers `body`; the messages the server's
    own send got, each with its caller's name."""

    async def route(request: web.FastApiRequest):
        return to_response(GatewayResponse(200, Headers([("x-request-id", "rq-1")]), body))

    app.api_route("/{path:path}", methods=["GET"])(route)
    got: list[tuple[dict, str]] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        got.append((message, sys._getframe(1).f_code.co_name))

    await app(dict(SCOPE), receive, send)
    return got


async def test_the_body_goes_to_the_servers_send_and_the_start_through_the_app():
    import function_app.app  # noqa: F401

    app = web.WebApp().get_app()
    for _ in range(2):  # the first request builds the stack; the second takes the lean path
        got = await _serve_bytes(app)
        (start, start_caller), (body, body_caller) = got
        assert start == {"type": "http.response.start", "status": 200,
                         "headers": [(b"content-length", b"5"), (b"x-request-id", b"rq-1")]}
        assert body == {"type": "http.response.body", "body": b"hello"}
        assert start_caller != "__call__"  # through the app's wrappers, which track the start
        assert body_caller == "__call__"  # DirectResponse's own


async def test_an_app_with_middleware_of_its_own_keeps_every_wrapper_on_the_body():
    import function_app.app  # noqa: F401

    app = web.WebApp().get_app()

    app.add_middleware(UpperBodies)
    for _ in range(2):
        got = await _serve_bytes(app)
        assert [m.get("body") for m, _ in got] == [None, b"HELLO"]


async def test_with_fastapis_own_telemetry_on_the_body_still_passes_its_wrapper():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import function_app.app  # noqa: F401

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = web.FastAPI(telemetry={"tracer_provider": provider, "metrics": False, "logs": False})
    got = await _serve_bytes(app)
    assert [m.get("body") for m, _ in got] == [None, b"hello"]
    assert {caller for _, caller in got} == {"wrapped_send"}  # the telemetry's, for each
    served = [s for s in spans.get_finished_spans()
              if s.attributes.get("http.response.status_code") == 200]
    assert len(served) == 1


async def test_without_the_servers_send_in_the_scope_both_go_through_send_and_background_runs():
    ran = []

    async def later():
        ran.append(True)

    made = to_response(GatewayResponse(204, Headers(), b""))
    assert type(made) is DirectResponse
    made.background = later
    sent = []

    async def send(message):
        sent.append(message)

    await made({"type": "http"}, None, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert ran == [True]
    server = []

    async def server_send(message):
        server.append(message)

    sent.clear()
    await made({"type": "http", SERVER_SEND: server_send}, None, send)
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert [m["type"] for m in server] == ["http.response.body"]


def test_a_websocket_scope_gets_starlettes_own_call():
    sent = []

    async def send(message):
        sent.append(message)

    made = to_response(GatewayResponse(403, Headers(), b"no"))
    asyncio.run(made({"type": "websocket"}, None, send))
    assert sent and all(m["type"].startswith("websocket.") for m in sent)
