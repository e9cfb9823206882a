"""Handler-level fixtures: the registered handlers, called directly with a fake upstream."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from function_app import app as app_module
from function_app.adapters.httpx_upstream import HttpxUpstream
from function_app.settings.load import load_settings
from function_app.wiring.build import build_gateway


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


@pytest.fixture
async def gw(backend):
    """`await gw(**environ)`: install a GATEWAY_AUTH=required gateway (unless `environ` says
    otherwise) on an in-memory key store, returned for the test to put keys in."""
    from function_app.adapters.keystore_memory import MemoryKeyStore

    store = MemoryKeyStore()

    async def _install(**environ: str) -> MemoryKeyStore:
        settings = load_settings({"GATEWAY_AUTH": "required", **environ})
        upstream = HttpxUpstream(httpx.MockTransport(backend))
        app_module.gateway.install(await build_gateway(settings, upstream=upstream,
                                                       key_store=store))
        return store

    yield _install
    await app_module.gateway.aclose()
