"""The limiter's Table client consults the proxy environment on each call only when the
environment names a proxy at start (function_app/adapters/limitstore_table.py, "Proxies"):
without one, no netrc or proxy look-up per call; with one, as the SDK does by default. Both
still talk to the real Azurite."""

from __future__ import annotations

import uuid

import pytest

from function_app.adapters.limitstore_table import open_limit_storage
from function_app.ratelimit.store import RowKey

pytestmark = pytest.mark.asyncio
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def trusts_environment(storage) -> bool:
    return storage.service._client._client._pipeline._transport._use_env_settings


@pytest.fixture
def no_proxies(monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


async def round_trip(storage) -> None:
    key = RowKey("p", uuid.uuid4().hex)
    assert await storage.buckets.read(key) is None
    await storage.buckets.write(key, {"tokens": 1.0}, None)
    assert (await storage.buckets.read(key)).fields["tokens"] == 1.0


async def test_without_proxy_variables_the_environment_is_not_read_per_call(azurite,
                                                                            no_proxies):
    storage = open_limit_storage(azurite.connection_string,
                                 buckets_table=f"rl{uuid.uuid4().hex[:10]}")
    try:
        assert not trusts_environment(storage)
        await round_trip(storage)
    finally:
        await storage.close()


async def test_a_proxy_variable_keeps_the_sdk_reading_the_environment(azurite, no_proxies):
    no_proxies.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there
    no_proxies.setenv("NO_PROXY", "127.0.0.1")  # Azurite is reached directly
    storage = open_limit_storage(azurite.connection_string,
                                 buckets_table=f"rl{uuid.uuid4().hex[:10]}")
    try:
        assert trusts_environment(storage)
        await round_trip(storage)
    finally:
        await storage.close()


def routing_trusts_environment(store) -> bool:
    return store._service._client._client._pipeline._transport._use_env_settings


@pytest.mark.parametrize("proxy", [None, "http://127.0.0.1:9"])
async def test_the_routing_store_reads_the_proxy_environment_as_the_limiter_does(
        azurite, no_proxies, proxy):
    """The breaker rows are re-read every BREAKER_CACHE_S (0.5 s): the same rule as above."""
    from function_app.adapters.breakerstore_table import open_routing_store

    if proxy is not None:
        no_proxies.setenv("HTTPS_PROXY", proxy)
        no_proxies.setenv("NO_PROXY", "127.0.0.1")
    store = open_routing_store(azurite.connection_string, "", f"rt{uuid.uuid4().hex[:10]}")
    try:
        assert routing_trusts_environment(store) is (proxy is not None)
        assert await store.read_breakers() == []
    finally:
        await store.close()
