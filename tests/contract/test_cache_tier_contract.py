"""The CacheTier contract, run against the memory LRU, a real redis-server and Azurite Blob;
and the tier stack surviving a shared tier that is down or slow."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from function_app.adapters.cache_blob import BlobCacheTier
from function_app.adapters.cache_redis import RedisCacheTier
from function_app.cache.entry import CacheEntry
from function_app.cache.memory import MemoryTier
from function_app.cache.tiers import TieredCache
from scripts.procs import free_port
from tests.support.cache_servers import azurite_blob_fixture, redis_fixture
from tests.support.waiting import wait_until

redis_server = redis_fixture()
azurite_blob = azurite_blob_fixture()


@pytest.fixture(params=["memory", "redis", "blob"])
async def tier(request: pytest.FixtureRequest):
    if request.param == "memory":
        made = MemoryTier(1 << 20, time.time)
    elif request.param == "redis":
        made = RedisCacheTier.open(request.getfixturevalue("redis_server").url)
    else:
        made = BlobCacheTier.open(request.getfixturevalue("azurite_blob").connection_string, "",
                                  f"c{uuid.uuid4().hex[:12]}")
    yield made
    await made.aclose()


def fresh(body: bytes = b"body", ttl: float = 60.0, age: float = 0.0) -> CacheEntry:
    return CacheEntry(200, [("content-type", "text/plain"), ("x-a", "1")], body,
                      time.time() - age, ttl, 0.0, (("accept", "h"),), None)


def key() -> str:
    return "h1:" + uuid.uuid4().hex


async def test_a_missing_key_is_none(tier):
    assert await tier.get(key()) is None


async def test_put_then_get_round_trips(tier):
    k, entry = key(), fresh(b"\x00\xffbinary" * 100)
    await tier.put(k, entry)
    assert await tier.get(k) == entry


async def test_a_put_overwrites_and_delete_removes(tier):
    k = key()
    await tier.put(k, fresh(b"one"))
    await tier.put(k, fresh(b"two"))
    assert (await tier.get(k)).body == b"two"
    await tier.delete(k)
    assert await tier.get(k) is None


async def test_an_entry_is_gone_once_expired(tier):
    k = key()
    await tier.put(k, fresh(ttl=30.0, age=29.7))

    async def gone() -> bool:
        return await tier.get(k) is None

    await wait_until(gone)


async def test_blob_sweep_deletes_expired_entries_only(azurite_blob):
    blob = BlobCacheTier.open(azurite_blob.connection_string, "", f"c{uuid.uuid4().hex[:12]}",)
    try:
        old, new = key(), key()
        await blob.put(old, fresh(ttl=1.0, age=5.0))
        await blob.put(new, fresh())
        assert await blob.sweep() == 1
        names = [b.name async for b in blob.container.list_blobs()]
        assert names == [new.replace(":", "/")]
    finally:
        await blob.aclose()


async def test_a_shared_tier_that_is_down_is_bypassed_and_counted():
    dead = RedisCacheTier.open(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    stack = TieredCache(MemoryTier(1 << 20, time.time), dead, timeout_s=0.5,
                        monotonic=time.monotonic)
    assert await stack.get(key()) is None
    assert stack.shared_counters["errors"] + stack.shared_counters["timeouts"] == 1
    assert await stack.get(key()) is None  # within the cooldown: not even tried
    assert stack.shared_counters["skipped"] == 1
    stack.put("k", fresh())
    assert (await stack.get("k")).body == b"body"  # the memory tier still serves
    await stack.aclose()


class SlowTier:
    name = "slow"

    async def get(self, key):
        await asyncio.sleep(5)

    async def put(self, key, entry):
        await asyncio.sleep(5)

    async def delete(self, key):
        pass

    def stats(self):
        return {}

    async def aclose(self):
        pass


async def test_a_slow_shared_tier_times_out_into_a_miss():
    stack = TieredCache(MemoryTier(1 << 20, time.time), SlowTier(), timeout_s=0.05,
                        monotonic=time.monotonic)
    assert await stack.get(key()) is None
    assert stack.shared_counters["timeouts"] == 1
    await stack.aclose()


async def test_two_stacks_share_entries_through_redis(redis_server):
    stacks = [TieredCache(MemoryTier(1 << 20, time.time), RedisCacheTier.open(redis_server.url),
                          timeout_s=1.0, monotonic=time.monotonic) for _ in range(2)]
    k = key()
    stacks[0].put(k, fresh(b"shared"))
    await stacks[0].flush()
    assert (await stacks[1].get(k)).body == b"shared"
    assert stacks[1].shared_counters["hits"] == 1
    assert stacks[1].memory.lookup(k) is not None  # promoted into the memory tier
    for stack in stacks:
        await stack.aclose()


async def test_the_blob_tier_sweeps_by_itself(azurite_blob):
    from azure.storage.blob.aio import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite_blob.connection_string)
    blob = BlobCacheTier(service, f"c{uuid.uuid4().hex[:12]}", sweep_interval_s=0.1)
    try:
        await blob.put(key(), fresh(ttl=1.0, age=5.0))  # starts the sweeper

        async def swept() -> bool:
            return [b async for b in blob.container.list_blobs()] == []

        await wait_until(swept)
        assert blob.counters["swept"] >= 1
    finally:
        await blob.aclose()
