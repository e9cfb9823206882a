"""Handler-level fixtures: the registered handlers, called directly with a fake upstream."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from starlette.requests import Request

from function_app import app as app_module
from function_app.adapters.httpx_upstream import HttpxUpstream
from function_app.bootstrap import build_gateway
from function_app.settings.load import load_settings


class Backend:
    """A fake backend behind httpx.MockTransport that records what reached it."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response] | None = None):
        self.seen: list[httpx.Request] = []
        self.respond = respond or (lambda r: httpx.Response(200, json={"echo": r.url.path}))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return self.respond(request)


@pytest.fixture
def backend():
    return Backend()


@pytest.fixture
async def install(backend):
    """Install a gateway wired to `backend`; returns the handler module's gateway holder."""

    async def _install(**environ: str):
        settings = load_settings(environ)
        upstream = HttpxUpstream(httpx.MockTransport(backend))
        app_module.gateway.install(await build_gateway(settings, upstream=upstream))
        return settings

    yield _install
    await app_module.gateway.aclose()


def make_request(method: str, path: str, body: bytes = b"", headers: dict | None = None,
                 query: str = "", client: str = "198.51.100.4") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "http_version": "1.1", "method": method, "path": path,
             "raw_path": path.encode(), "query_string": query.encode(), "headers": raw,
             "client": (client, 50000), "server": ("127.0.0.1", 7071), "scheme": "http"}
    chunks = [body[i:i + 1000] for i in range(0, len(body), 1000)] or [b""]

    async def receive():
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    return Request(scope, receive)


async def read_body(response) -> bytes:
    if hasattr(response, "body_iterator"):
        return b"".join([chunk async for chunk in response.body_iterator])
    return response.body


async def read_json(response) -> dict:
    return json.loads(await read_body(response))
