"""A request that finds its pool empty while a top-up is in flight is admitted from that top-up,
not made to lease again (and wait another round trip) because the top-up landed in the moment
between its look at the pool and its join of the lease.

Through the local host and Azurite (`load/profile_pipeline.py --azurite`) every lease started
for a waiting request found a pool of 128-354 tokens: the request had seen it empty, its wait
began a loop turn later (asyncio.gather starts it as a task), and the top-up landed in between.
"""

from __future__ import annotations

import asyncio

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.leaser import Outcome
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from tests.support.clock import FakeClock


class HeldWrites(MemoryRateLimitStore):
    """Writes wait while `held` until `release()`; `writes` counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.held = False
        self.writes = 0
        self._waiting: list[asyncio.Future] = []

    async def write(self, key, fields, etag):
        self.writes += 1
        if self.held:
            gate = asyncio.get_running_loop().create_future()
            self._waiting.append(gate)
            await gate
        return await super().write(key, fields, etag)

    def release(self) -> None:
        self.held = False
        for gate in self._waiting:
            gate.set_result(None)


async def test_a_waiter_joins_the_top_up_in_flight():
    store, clock = HeldWrites(), FakeClock()
    limiter = Limiter(store, clock, LimiterConfig(), "gw", background=False)
    scoped = [ScopedLimit("client", "c1", Limit(1000.0, 2000.0))]
    assert (await limiter.acquire(scoped)).allowed  # the first lease
    ks = limiter._keys[("client", "c1")]
    store.held = True
    while ks.fetch is None:  # spend until a background top-up starts (its write held)
        assert (await limiter.acquire(scoped)).allowed
    for _ in range(5):  # the top-up runs up to its held write
        await asyncio.sleep(0)
    while ks.pool(clock.now()) >= 1:
        assert (await limiter.acquire(scoped)).allowed
    assert store.writes == 2 and ks.fetch is not None
    waiter = asyncio.create_task(limiter.acquire(scoped))
    await asyncio.sleep(0)  # it sees the empty pool and joins the top-up
    store.release()
    for _ in range(20):
        await asyncio.sleep(0)
    assert waiter.done() and waiter.result().allowed
    assert store.writes == 2  # no second lease for a request the top-up pays


async def test_a_wait_that_begins_after_the_top_up_landed_leases_nothing():
    """The moment itself: the request decided to wait while the pool was empty; when its wait
    begins the top-up has landed (tokens in the pool, no lease in flight)."""
    store, clock = HeldWrites(), FakeClock()
    limiter = Limiter(store, clock, LimiterConfig(), "gw", background=False)
    scoped = [ScopedLimit("client", "c1", Limit(1000.0, 2000.0))]
    assert (await limiter.acquire(scoped)).allowed
    ks = limiter._keys[("client", "c1")]
    for _ in range(5):  # the top-up the first request started lands
        await asyncio.sleep(0)
    assert ks.fetch is None and ks.pool(clock.now()) >= 1
    wait = limiter._fetch(ks, 1.0)
    try:
        with pytest.raises(StopIteration) as finished:  # at once: no lease, no loop turn
            wait.send(None)
    finally:
        wait.close()
    assert finished.value.value is Outcome.GRANTED
    assert ks.fetch is None and ks.waiting == 0 and ks.waiters == []
