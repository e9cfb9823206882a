"""KeyCache (TTL, background re-read, negative cache, lookup bucket, outages) and the budget
limiter wrapper (race retries, budget_exceeded), with fakes behind the same interfaces."""

from __future__ import annotations

import asyncio

import pytest

from function_app.adapters.keystore_memory import MemoryKeyStore
from function_app.ratelimit.limits import Decision, Limit, ScopedLimit
from function_app.tenants.access import Grant
from function_app.tenants.cache import KeyCache, LookupsExhausted
from function_app.tenants.errors import BudgetExceeded
from function_app.tenants.limits import BudgetLimiter, TaggedScopes
from function_app.tenants.records import KeyRecord
from function_app.tenants.store import KeyStoreUnavailable
from function_app.tenants.usage import UsageRecorder
from tests.support.clock import FakeClock, settle

HASH = "a" * 64
RECORD = KeyRecord(HASH, "abcd2345", "acme", "ci", 0.0)


class FlakyStore(MemoryKeyStore):
    down = False

    async def get_key(self, key_hash):
        if self.down:
            raise KeyStoreUnavailable("down")
        return await super().get_key(key_hash)


@pytest.fixture
def store():
    s = FlakyStore()
    s.keys[HASH] = RECORD
    return s


async def test_a_revocation_is_seen_within_the_ttl_without_a_read_per_request(store):
    clock = FakeClock()
    cache = KeyCache(store, clock, ttl_s=4)
    assert (await cache.grant(HASH)).key == RECORD
    store.keys[HASH] = RECORD.with_(revoked=True)
    for _ in range(50):
        assert not (await cache.grant(HASH)).key.revoked
    assert store.reads == 1
    await clock.advance(2.5)  # past half the TTL: served from memory, re-read behind
    assert not (await cache.grant(HASH)).key.revoked
    await settle()
    assert store.reads == 2 and (await cache.grant(HASH)).key.revoked


async def test_after_the_ttl_a_request_waits_for_a_fresh_read(store):
    clock = FakeClock()
    cache = KeyCache(store, clock, ttl_s=4)
    await cache.grant(HASH)
    store.keys[HASH] = RECORD.with_(revoked=True)
    await clock.advance(4.0)
    assert (await cache.grant(HASH)).key.revoked


async def test_a_cached_key_survives_an_outage_and_an_unknown_one_does_not(store):
    clock = FakeClock()
    cache = KeyCache(store, clock, ttl_s=1)
    await cache.grant(HASH)
    store.down = True
    await clock.advance(5)
    assert (await cache.grant(HASH)).key == RECORD
    with pytest.raises(KeyStoreUnavailable):
        await cache.grant("b" * 64)


async def test_unknown_keys_are_remembered_and_new_ones_are_rate_bounded(store):
    clock = FakeClock()
    cache = KeyCache(store, clock, ttl_s=4, negative_max=3, lookups_per_s=2)
    assert await cache.grant("b" * 64) is None
    assert await cache.grant("b" * 64) is None
    assert store.reads == 1
    assert await cache.grant("c" * 64) is None
    with pytest.raises(LookupsExhausted):
        await cache.grant("d" * 64)
    await clock.advance(1)
    assert await cache.grant("d" * 64) is None and store.reads == 3


class ScriptedLimiter:
    def __init__(self, decisions):
        self.decisions, self.adjusted = list(decisions), []

    async def acquire(self, scoped, cost=1):
        return self.decisions.pop(0)

    def adjust(self, scoped, delta):
        self.adjusted.append(delta)


BUDGET = ScopedLimit("budget_tenant_day", "acme:2026-11-29", Limit(0, 1000))


def tagged() -> TaggedScopes:
    return TaggedScopes([BUDGET], Grant(RECORD.with_(tenant="acme")), "sim-python")


async def test_a_write_race_on_the_budget_row_is_retried_not_refused():
    race = Decision(False, scope=BUDGET.scope, retry_after_s=1.0, reason="contention")
    inner = ScriptedLimiter([race, race, Decision(True)])
    recorder = UsageRecorder()
    clock = FakeClock()
    limiter = BudgetLimiter(inner, recorder, clock)
    decision = await _run_with_time(clock, limiter.acquire(tagged(), 30))
    assert decision.allowed and inner.decisions == []
    limiter.adjust(tagged(), -10)
    delta = recorder.due(1e10, force=True)[0]
    # Tokens counted as charged and settled; spend is priced at settlement (test_spend.py).
    assert (delta.tokens, delta.spend) == (20, 0.0)


async def test_a_spent_budget_is_budget_exceeded_with_its_reset():
    spent = Decision(False, scope=BUDGET.scope, retry_after_s=3600.0, reason="limited")
    limiter = BudgetLimiter(ScriptedLimiter([spent]), UsageRecorder(), FakeClock())
    with pytest.raises(BudgetExceeded) as caught:
        await limiter.acquire(tagged(), 30)
    assert caught.value.headers["x-budget-reset"] == "2026-11-30T00:00:00Z"
    assert "tenant acme" in caught.value.message and "1000 tokens" in caught.value.message
    assert "fewer than the 30 tokens this request reserves" in caught.value.message


async def _run_with_time(clock, coro):
    """Drive the fake clock until `coro` (which sleeps on it) finishes."""
    task = asyncio.ensure_future(coro)
    while not task.done():
        await clock.advance(0.05)
    return task.result()


class SlowStore(FlakyStore):
    """Each read waits for `gate`, as a storage round trip would: concurrent lookups overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def get_key(self, key_hash):
        await self.gate.wait()
        return await super().get_key(key_hash)


async def test_a_cold_burst_on_one_key_is_one_storage_read_shared_by_all():
    store = SlowStore()
    store.keys[HASH] = RECORD
    cache = KeyCache(store, FakeClock(), ttl_s=4, lookups_per_s=50)
    waiters = [asyncio.create_task(cache.grant(HASH)) for _ in range(150)]
    await settle()
    store.gate.set()
    grants = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(g, Grant) and g.key == RECORD for g in grants)  # no 503
    assert store.reads == 1 and cache.counters["lookups_refused"] == 0


async def test_the_lookup_cap_counts_storage_reads_not_waiters():
    store = SlowStore()
    cache = KeyCache(store, FakeClock(), ttl_s=4, lookups_per_s=3)
    made_up = [f"{i:x}" * 64 for i in range(5)]
    waiters = [asyncio.create_task(cache.grant(h[:64])) for h in made_up for _ in range(10)]
    await settle()
    store.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert store.reads == 3  # three distinct keys read, each once, then the cap
    refused = [r for r in results if isinstance(r, LookupsExhausted)]
    assert len(refused) == 20 and results.count(None) == 30
