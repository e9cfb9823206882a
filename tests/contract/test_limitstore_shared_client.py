"""The limiter and the routing store talk to one storage account through one Table client (one
connection pool): the breakers' refresh, every BREAKER_CACHE_S, keeps a connection open that the
limiter's first lease after a pause then takes instead of connecting again
(docs/perf/pass8-lease.md). Against the real Azurite; connections counted by the OS."""

from __future__ import annotations

import os
import uuid

import psutil
import pytest
from azure.data.tables.aio import TableServiceClient

from function_app.adapters.breakerstore_table import open_routing_store
from function_app.adapters.limitstore_table import open_limit_storage
from function_app.ratelimit.store import RowKey
from function_app.settings.load import load_settings
from function_app.wiring.build import build_gateway

pytestmark = pytest.mark.asyncio


def connections_to(port: int) -> int:
    """This process's established TCP connections to `port`."""
    return sum(1 for c in psutil.Process(os.getpid()).net_connections(kind="tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


async def test_the_routing_store_on_the_limiters_client_reuses_its_connection(azurite):
    suffix = uuid.uuid4().hex[:10]
    storage = open_limit_storage(azurite.connection_string, buckets_table=f"rl{suffix}")
    store = open_routing_store(azurite.connection_string, "", f"rt{suffix}",
                               service=storage.service)
    try:
        key = RowKey("p", uuid.uuid4().hex)
        assert await storage.buckets.read(key) is None
        assert await store.read_breakers() == []  # one call after the other: one connection
        assert await storage.buckets.read(key) is None
        assert connections_to(azurite.port) == 1
        await store.close()  # the routing store does not own the client: it stays usable
        await storage.buckets.write(key, {"tokens": 1.0}, None)
        assert (await storage.buckets.read(key)).fields["tokens"] == 1.0
    finally:
        await storage.close()


async def test_a_gateway_with_table_storage_opens_one_client_for_limits_and_routing(
        azurite, monkeypatch):
    opened: list[str] = []
    original = TableServiceClient.from_connection_string.__func__

    def counting(cls, connection_string, **kwargs):
        opened.append(connection_string)
        return original(cls, connection_string, **kwargs)

    monkeypatch.setattr(TableServiceClient, "from_connection_string", classmethod(counting))
    suffix = uuid.uuid4().hex[:8]
    gateway = await build_gateway(load_settings({
        "PY_SERVICE_URL": "http://127.0.0.1:9", "NODE_SERVICE_URL": "http://127.0.0.1:9",
        "GLOBAL_RPS": "1000", "CLIENT_RPS": "100",
        "RATE_LIMIT_STORAGE_CONNECTION": azurite.connection_string,
        "RATE_LIMIT_TABLE": f"rl{suffix}", "ROUTING_TABLE": f"rt{suffix}",
        "AzureWebJobs.health_checks.Disabled": "true"}))
    try:
        assert opened == [azurite.connection_string]
        assert gateway.health_checks is not None  # routing storage is on, over that client
        assert (await gateway.health_checks())["ran"] is True
    finally:
        await gateway.aclose()
