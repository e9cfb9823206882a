"""One limiter over the memory store, driven by a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.core.store_errors import StoreConflict
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease import lease
from function_app.ratelimit.lease.keys import bucket_partition
from function_app.ratelimit.lease.limiter import CONTENTION_ROUNDS, Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.store import RowKey
from tests.support.clock import FakeClock


def make(store=None, clock=None, **config):
    store = store or MemoryRateLimitStore()
    clock = clock or FakeClock()
    return Limiter(store, clock, LimiterConfig(**config), "gw", background=False), store, clock


def scopes(client_rate=10.0, client_burst=20.0, global_rate=1000.0, global_burst=2000.0, **kw):
    return [
        ScopedLimit("global", "global", Limit(global_rate, global_burst)),
        ScopedLimit("client", "c1", Limit(client_rate, client_burst, kw.get("shadow", False))),
    ]


async def row(store, scope, key):
    stored = await store.read(RowKey(bucket_partition(scope, key), "s0"))
    return lease.row_from_fields(stored.fields) if stored else None


@pytest.mark.asyncio
async def test_admits_the_burst_then_denies_naming_the_scope_and_when_to_retry():
    limiter, _, _ = make()
    decisions = [await limiter.acquire(scopes()) for _ in range(30)]
    assert sum(d.allowed for d in decisions) == 20
    denied = decisions[-1]
    assert (denied.allowed, denied.scope, denied.reason) == (False, "client", "limited")
    assert denied.limit == Limit(10.0, 20.0) and denied.remaining == 0
    # alone on the row, the instance comes back when half a block has accrued (a third of
    # burst plus the request it wanted): one write then admits several requests
    half_block = (1 + lease.block(Limit(10.0, 20.0), 1)) // 2
    assert denied.retry_after_s == pytest.approx(half_block / 10.0, abs=0.01)


@pytest.mark.asyncio
async def test_refills_with_time():
    limiter, _, clock = make()
    for _ in range(25):
        await limiter.acquire(scopes())
    await clock.advance(1.0)
    admitted = [(await limiter.acquire(scopes())).allowed for _ in range(15)]
    assert sum(admitted) == 10


@pytest.mark.asyncio
async def test_a_client_denial_consumes_no_global_tokens():
    limiter, store, _ = make()
    for _ in range(20):
        await limiter.acquire(scopes())
    pool = limiter._keys[("global", "global")]
    before = pool.tokens + (await row(store, "global", "global")).tokens
    for _ in range(50):
        assert not (await limiter.acquire(scopes())).allowed
    after = pool.tokens + (await row(store, "global", "global")).tokens
    assert after == before


@pytest.mark.asyncio
async def test_hot_keys_are_decided_in_memory_without_storage_calls():
    limiter, _, clock = make()
    scoped = scopes(client_rate=1000, client_burst=2000)
    for _ in range(50):  # warm up: the observed rate sizes the leases
        await limiter.acquire(scoped)
        await clock.advance(0.002)
    await asyncio.sleep(0)
    before = limiter.counters["storage_round_trips"]
    for _ in range(10):
        assert (await limiter.acquire(scoped)).allowed
    assert limiter.counters["storage_round_trips"] == before


@pytest.mark.asyncio
async def test_steady_load_above_the_limit_costs_few_round_trips_and_admits_the_rate():
    limiter, _, clock = make()
    scoped = scopes(client_rate=200, client_burst=400)
    admitted = 0
    for step in range(8000):  # 8 s at 2,000 requests/s offered
        for _ in range(2):
            admitted += (await limiter.acquire(scoped)).allowed
        await clock.advance(0.001)
        if step == 2000:
            base = (limiter.counters["storage_round_trips"], admitted)
        if step % 100 == 0:
            await limiter.maintain()
    trips, steady = limiter.counters["storage_round_trips"] - base[0], admitted - base[1]
    assert trips / steady <= 0.05
    ideal = 400 + 200 * 8
    assert 0.95 * ideal <= admitted <= ideal


@pytest.mark.asyncio
async def test_a_shadow_limit_reports_but_admits():
    limiter, _, _ = make()
    decisions = [await limiter.acquire(scopes(shadow=True)) for _ in range(30)]
    assert all(d.allowed for d in decisions)
    assert decisions[-1].shadow_scope == "client"
    assert limiter.counters["shadow_denied"] == 10
    assert limiter.counters["admitted"] == 30


@pytest.mark.asyncio
async def test_cost_is_charged_against_every_scope():
    limiter, _, _ = make()
    assert (await limiter.acquire(scopes(), cost=15)).allowed
    denied = await limiter.acquire(scopes(), cost=6)
    assert not denied.allowed and denied.scope == "client"
    assert (await limiter.acquire(scopes(), cost=5)).allowed


@pytest.mark.asyncio
async def test_close_returns_unused_tokens_and_releases_the_lease():
    limiter, store, _ = make()
    for _ in range(3):
        await limiter.acquire(scopes(global_rate=100, global_burst=100))
    await limiter.close()
    shared = (await row(store, "global", "global"))
    assert shared.tokens == 97 and shared.holders == {}


@pytest.mark.asyncio
async def test_idle_pools_go_back_to_storage():
    limiter, store, clock = make()
    await limiter.acquire(scopes(global_rate=100, global_burst=100))
    await clock.advance(2.0)
    await limiter.maintain()
    assert (await row(store, "global", "global")).tokens == 100  # 99 + returned 1 + refill, capped
    assert limiter.counters["returns"] >= 1


@pytest.mark.asyncio
async def test_low_rate_keys_lease_exactly_one_request_per_write():
    limiter, _, _ = make(exact_below_rps=1.0)
    scoped = [ScopedLimit("client", "slow", Limit(0.5, 3))]
    for _ in range(3):
        assert (await limiter.acquire(scoped)).allowed
        assert limiter._keys[("client", "slow")].tokens == 0
    assert limiter.counters["leases"] == 3
    assert not (await limiter.acquire(scoped)).allowed


class AlwaysConflicting(MemoryRateLimitStore):
    async def write(self, key, fields, etag):
        raise StoreConflict("someone else always wins")


@pytest.mark.asyncio
async def test_a_412_storm_ends_in_a_short_denial_after_a_few_retries():
    limiter, _, _ = make(store=AlwaysConflicting(), conflict_retries=3)
    decision = await limiter.acquire(scopes())
    assert (decision.allowed, decision.reason, decision.retry_after_s) == (
        False, "contention", 1.0
    )
    # One try and three retries per scope, in the first lease and each contention round.
    assert limiter.counters["conflicts"] == 2 * 4 * (1 + CONTENTION_ROUNDS)
    assert limiter.counters["contention_denied"] >= 1


class ConflictingFirst(MemoryRateLimitStore):
    """Every write conflicts until `conflicts` have been refused (other instances' writes)."""

    def __init__(self, conflicts: int):
        super().__init__()
        self.conflicts = conflicts

    async def write(self, key, fields, etag):
        if self.conflicts > 0:
            self.conflicts -= 1
            raise StoreConflict("another instance wrote first")
        return await super().write(key, fields, etag)


@pytest.mark.asyncio
async def test_a_lease_that_gave_up_on_conflicts_is_tried_once_more_before_a_denial():
    # Three instances leasing one row under a slow host exhausted the retries: the row was full,
    # yet requests got 429 (CI, a client at 1/1000 of its limit). One more round admits them.
    store = ConflictingFirst(conflicts=2)  # one scope's single try and its one retry
    limiter, _, _ = make(store=store, conflict_retries=1)
    decision = await limiter.acquire(scopes()[:1])
    assert decision.allowed, decision
    assert limiter.counters["contention_denied"] == 1 and limiter.counters["leases"] == 1


@pytest.mark.asyncio
async def test_an_internal_error_never_escapes(monkeypatch):
    limiter, _, _ = make(failure_mode="closed")

    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(limiter, "_state", broken)
    decision = await limiter.acquire(scopes())
    assert not decision.allowed and decision.storage_unavailable
    assert limiter.counters["internal_errors"] == 1


@pytest.mark.asyncio
async def test_a_simultaneous_burst_within_the_bucket_is_admitted_whole():
    # 256 requests at once on two scopes, well inside both buckets: each lease moves at most
    # rate x lease_s, so waiters must lease again when others spent what they waited for.
    store = MemoryRateLimitStore(yield_every_op=True)
    limiter, _, _ = make(store=store)
    both = scopes(client_rate=500.0, client_burst=1000.0)
    decisions = await asyncio.gather(*(limiter.acquire(both) for _ in range(256)))
    assert [d.reason for d in decisions if not d.allowed] == []
