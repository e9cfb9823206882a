"""Upstream credentials of MCP servers (#29): the key as configured, and Entra tokens from a
local managed-identity endpoint of the App Service shape (IDENTITY_ENDPOINT / IDENTITY_HEADER),
which azure-identity's DefaultAzureCredential calls exactly as it does in Azure."""

from __future__ import annotations

import os
import time

import pytest
from aiohttp import web

from function_app.adapters.entra_tokens import identity_tokens
from function_app.http.headers import Headers
from function_app.mcp.config import McpServer
from function_app.mcp.credentials import Credentials, NoTokens
from scripts.procs import free_port

SCOPE = "api://mcp-internal/.default"


@pytest.fixture
async def identity_endpoint(monkeypatch):
    asked: list[dict] = []

    async def token(request: web.Request) -> web.Response:
        asked.append({"resource": request.query.get("resource"),
                      "secret": request.headers.get("X-IDENTITY-HEADER")})
        return web.json_response({"access_token": f"tok-{len(asked)}", "token_type": "Bearer",
                                  "expires_on": str(int(time.time()) + 3600),
                                  "resource": request.query.get("resource")})

    app = web.Application()
    app.router.add_get("/msi/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID",
                 "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "IDENTITY_SERVER_THUMBPRINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{port}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "identity-5ecret")
    yield asked
    await runner.cleanup()


async def test_an_entra_server_gets_a_managed_identity_token_cached_per_scope(
        identity_endpoint):
    tokens = identity_tokens(os.environ)
    credentials = Credentials(tokens)
    server = McpServer("internal", "https://internal.example/mcp", "entra", scope=SCOPE)
    first, second = Headers(), Headers()
    await credentials.apply(server, first)
    await credentials.apply(server, second)
    await credentials.close()
    assert first.get("authorization") == second.get("authorization") == "Bearer tok-1"
    assert identity_endpoint == [{"resource": "api://mcp-internal",
                                  "secret": "identity-5ecret"}]


async def test_a_key_server_gets_its_key_in_the_configured_header_and_none_gets_nothing():
    credentials = Credentials(NoTokens())
    headers = Headers()
    await credentials.apply(McpServer("k", "http://k", "key", "k3y", header="x-api-key"), headers)
    await credentials.apply(McpServer("n", "http://n"), headers)
    assert list(headers) == [("x-api-key", "k3y")]
