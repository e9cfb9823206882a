"""The memory tier never exceeds its byte budget; LRU order; coalescing of concurrent misses."""

import asyncio
import random

from function_app.cache.coalesce import Coalescer
from function_app.cache.entry import CacheEntry
from function_app.cache.memory import MemoryTier


def entry(size: int, ttl: float = 60.0, at: float = 0.0) -> CacheEntry:
    return CacheEntry(200, [("content-type", "x")], b"x" * size, at, ttl)


def test_random_sizes_never_exceed_the_budget():
    rng = random.Random(11)
    tier = MemoryTier(200_000, lambda: 0.0)
    for _ in range(5000):
        new = entry(rng.randrange(0, 60_000))
        key = f"k{rng.randrange(3000)}"
        assert tier.store(key, new) == (new.size <= tier.budget)
        assert tier.bytes <= tier.budget
        assert tier.bytes == sum(e.size for e in tier._entries.values())
    assert tier.evictions > 0 and len(tier) > 0


def test_an_entry_larger_than_the_budget_is_refused():
    tier = MemoryTier(1000, lambda: 0.0)
    assert not tier.store("big", entry(5000))
    assert tier.bytes == 0


def test_least_recently_used_goes_first():
    size = entry(100).size
    tier = MemoryTier(size * 3, lambda: 0.0)
    for key in "abc":
        tier.store(key, entry(100))
    assert tier.lookup("a") is not None  # a is now the most recent
    tier.store("d", entry(100))
    assert tier.lookup("b") is None
    assert all(tier.lookup(k) is not None for k in "acd")


def test_expired_entries_are_dropped_when_met():
    now = [0.0]
    tier = MemoryTier(10_000, lambda: now[0])
    tier.store("k", entry(10, ttl=5))
    now[0] = 4.9
    assert tier.lookup("k") is not None
    now[0] = 5.0
    assert tier.lookup("k") is None and tier.bytes == 0 and tier.expired == 1


async def test_concurrent_identical_fetches_run_once():
    coalescer: Coalescer[str] = Coalescer()
    release = asyncio.Event()
    calls = 0

    async def fetch():
        nonlocal calls
        calls += 1
        await release.wait()
        return "shared", "own"

    async def one():
        if coalescer.leading("k"):
            return await coalescer.wait("k")
        return await coalescer.lead("k", fetch)

    tasks = [asyncio.create_task(one()) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks)
    assert calls == 1
    assert sorted(results) == ["own"] + ["shared"] * 9
    assert coalescer.coalesced == 9 and not coalescer.leading("k")


async def test_a_failed_leader_gives_followers_none():
    coalescer: Coalescer[str] = Coalescer()
    release = asyncio.Event()

    async def fetch():
        await release.wait()
        raise RuntimeError("upstream broke")

    leader = asyncio.create_task(coalescer.lead("k", fetch))
    await asyncio.sleep(0)
    follower = asyncio.create_task(coalescer.wait("k"))
    await asyncio.sleep(0)
    release.set()
    assert await follower is None
    assert isinstance((await asyncio.gather(leader, return_exceptions=True))[0], RuntimeError)
