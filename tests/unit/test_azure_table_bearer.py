"""LazyTable's plain operations (adapters/azure_table.py) go through the table client's own
pipeline, so a client built with a token credential (the managed identity in Azure) sends each
of them with its bearer token, as the SDK's own operations do. A local stand-in for the Table
service records what arrives (http on 127.0.0.1: azure-core's https-only check for bearer
tokens is switched off for the test)."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import AioHttpTransport
from azure.data.tables.aio import TableServiceClient

from function_app.adapters.azure_table import LazyTable


class FakeCredential:
    def __init__(self) -> None:
        self.asked = 0

    async def get_token(self, *scopes, **kwargs) -> AccessToken:
        self.asked += 1
        return AccessToken("token-123", 4_102_444_800)

    async def get_token_info(self, *scopes, options=None):
        from azure.core.credentials import AccessTokenInfo

        self.asked += 1
        return AccessTokenInfo("token-123", 4_102_444_800)

    async def close(self) -> None:
        return None


@pytest.fixture
async def service_stub():
    seen: list[tuple[str, str, dict]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.method, request.path_qs, dict(request.headers)))
        if request.path.endswith("/Tables"):
            return web.Response(status=201, content_type="application/json", text="{}")
        if request.method == "GET":
            row = {"odata.etag": "W/\"datetime'x'\"", "PartitionKey": "p", "RowKey": "r",
                   "v": 1.5, "v@odata.type": "Edm.Double"}
            return web.Response(status=200, text=json.dumps(row),
                                content_type="application/json")
        return web.Response(status=204, headers={"ETag": "W/\"datetime'y'\""})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/acct", seen
    await runner.cleanup()


class PlainHttp(AioHttpTransport):
    """Sends what the pipeline made for https://127.0.0.1 to http://127.0.0.1."""

    async def send(self, request, **kwargs):
        request.url = request.url.replace("https://", "http://", 1)
        return await super().send(request, **kwargs)


async def test_plain_operations_carry_the_identitys_bearer_token(service_stub):
    url, seen = service_stub
    credential = FakeCredential()
    service = TableServiceClient(url.replace("http://", "https://"), credential=credential,
                                 retry_total=0, transport=PlainHttp())
    table = LazyTable(service, "limits")
    try:
        row = await table.get("p", "r")
        assert row["v"] == 1.5
        assert await table.replace({"PartitionKey": "p", "RowKey": "r", "v": 2.0},
                                   "W/\"datetime'x'\"") == "W/\"datetime'y'\""
    finally:
        await service.close()
    plain = [(m, p, h) for m, p, h in seen if "/limits(" in p]
    assert [m for m, _, _ in plain] == ["GET", "PUT"]
    for _, _, headers in plain:
        assert headers["Authorization"] == "Bearer token-123"
        assert headers["x-ms-version"] and headers["x-ms-date"]
    assert plain[1][2]["If-Match"] == "W/\"datetime'x'\""
    assert credential.asked >= 1
