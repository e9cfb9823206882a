"""Tally mode across a fleet (issue #23, second round): instance ids wide enough for 1,000
instances, a clock ahead costing no extra storage calls, and fail-open following the fleet the
last summary counted rather than RATE_LIMIT_EXPECTED_INSTANCES. Virtual clock, in-memory store."""

from __future__ import annotations

import random

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.core.store_errors import StoreUnavailable
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.tally import tally
from function_app.ratelimit.tally.limiter import TallyLimiter
from tests.support.clock import FakeClock, SkewedClock
from tests.support.stores import FlakyRateLimitStore
from tests.unit.test_tally_limiter import START, config, fleet, run_for, scoped


def test_two_instances_whose_names_share_32_bits_of_hash_are_two_members():
    """Ids were 32 bits: at 1,000 instances two share a row about once in 10,000 fleets, and
    one of them then never counts. These two names collide in blake2b's first 32 bits."""
    a, b = "gw-138145", "gw-149231"
    assert tally.member_id(a) != tally.member_id(b)
    assert len(tally.member_id(a)) >= 16  # 64 bits or more
    rows = [tally.InstanceRow(tally.member_id(name), 5, 15.0, {"k": (1.0, 10.0)})
            for name in (a, b)]
    assert tally.aggregate(rows, 5, 3.0).instances == 2


@pytest.mark.asyncio
async def test_a_clock_two_seconds_ahead_makes_no_extra_storage_calls():
    """2 s ahead with P = 3 s, an instance found its view stale for part of every period and
    synced again on a request (publish + read): 1000 instances made 20 % more storage calls
    (0.055 per admitted request instead of 0.046 in the simulator)."""
    clock = FakeClock(start=START)
    store = MemoryRateLimitStore()
    lims = [TallyLimiter(store, SkewedClock(clock, 2.0) if k == 3 else clock,
                         config(tally_period_s=3.0), f"i{k}", background=False,
                         rng=random.Random(k)) for k in range(4)]

    async def traffic():
        for lim in lims:
            await lim.acquire(scoped("k", 1000.0, 1000.0), 1)

    await run_for(clock, lims, 15.0, each_step=traffic)
    before = [lim.counters["storage_round_trips"] for lim in lims]
    await run_for(clock, lims, 60.0, each_step=traffic)
    calls = [lim.counters["storage_round_trips"] - b for lim, b in zip(lims, before, strict=True)]
    followers = [c for lim, c in zip(lims[:3], calls[:3], strict=True) if not lim._sync.leading]
    assert not lims[3]._sync.leading and followers
    # Two calls per period (write, read): 40 in 60 s; the on-time followers make as many.
    assert calls[3] <= max(followers) + 2, calls


@pytest.mark.asyncio
async def test_fail_open_shares_follow_the_counted_fleet_not_expected_instances():
    """Storage throttled: each instance admitted rate / E locally, so 20 instances with E = 4
    admitted five times the limit (about 25 times at 100 instances). With the last summary
    counting 20, each admits a twentieth."""
    clock = FakeClock(start=START)
    flaky = FlakyRateLimitStore(MemoryRateLimitStore())
    _, _, lims = fleet(20, store=flaky, clock=clock, failure_mode="open")

    async def traffic():
        for lim in lims:
            await lim.acquire(scoped("k", 10.0, 10.0), 1)

    await run_for(clock, lims, 12.0, each_step=traffic)
    assert all(lim._sync.view is not None and lim._sync.view.instances == 20 for lim in lims)
    flaky.down = True
    await run_for(clock, lims, 6.0, each_step=traffic)  # the views go stale: fail-open
    admitted = 0

    async def counted():
        nonlocal admitted
        for lim in lims:
            admitted += (await lim.acquire(scoped("k", 10.0, 10.0), 1)).allowed

    await run_for(clock, lims, 10.0, each_step=counted)
    assert sum(lim.counters["fallback_admitted"] for lim in lims) > 0
    # Exact: burst 10 + 10/s * 10 s = 110; each instance's safe bucket (1/20) refills too.
    assert admitted <= 10.0 + 10.0 * 10.0 + 20, admitted


@pytest.mark.asyncio
async def test_a_budget_on_every_request_is_leased_in_blocks_not_a_storage_call_each():
    """Budgets were decided exactly on the lease rows, two storage calls per request: at
    20,000 requests/s with a budget on each, past the account's 20,000 operations/s, and the
    throttled fleet's fail-open spent budgets three times over in the simulator."""
    clock, _, (lim,) = fleet(1)
    budget = [ScopedLimit("tenant", "t", Limit(0.0, 1e6))]

    async def traffic():
        for _ in range(10):
            assert (await lim.acquire(scoped("k", 1e6, 1e6) + budget, 1)).allowed

    await run_for(clock, [lim], 10.0, each_step=traffic)  # 2,000 requests
    assert lim.counters["storage_round_trips"] < 200, lim.counters["storage_round_trips"]


@pytest.mark.asyncio
async def test_a_budget_without_storage_fails_open_at_the_counted_fleets_share():
    """A budget never refills: fail-open gave each instance budget / E of it, so 20 instances
    with E = 4 could spend five budgets more while storage was throttled. With the counted
    fleet's share, at most one more (the bound docs/ratelimit-tally.md states)."""
    clock = FakeClock(start=START)
    flaky = FlakyRateLimitStore(MemoryRateLimitStore())
    _, _, lims = fleet(20, store=flaky, clock=clock, failure_mode="open")
    budget = [ScopedLimit("tenant", "t", Limit(0.0, 100.0))]
    spent = 0

    async def traffic():
        nonlocal spent
        for lim in lims:
            spent += (await lim.acquire(scoped("k", 1e4, 1e4) + budget, 1)).allowed

    async def warm():
        for lim in lims:
            await lim.acquire(scoped("k", 1e4, 1e4), 1)

    await run_for(clock, lims, 9.0, each_step=warm)  # counted by a summary
    assert all(lim._sync.view.instances == 20 for lim in lims)
    await run_for(clock, lims, 0.1, each_step=traffic)
    flaky.down = True
    await run_for(clock, lims, 5.0, each_step=traffic)
    assert sum(lim.counters["fallback_admitted"] for lim in lims) > 0
    assert spent <= 2 * 100 + 20, spent


class ReadsFail(MemoryRateLimitStore):
    """Writes land; every read is refused (a throttled partition answering reads 503)."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = 0
        self.failing = False

    async def put(self, key, fields):
        self.puts += 1
        return await super().put(key, fields)

    async def read(self, key):
        if self.failing:
            raise StoreUnavailable("503 ServerBusy")
        return await super().read(key)


@pytest.mark.asyncio
async def test_a_sync_on_a_stale_view_does_not_write_a_row_storage_already_has():
    """Under ServerBusy a request finding its view stale synced again, writing the row of
    the period it had already written (a third of the puts in the simulator at 50 %
    ServerBusy): it reads the summary again, and writes only a row not yet accepted."""
    store = ReadsFail()
    clock, _, lims = fleet(2, store=store, tally_period_s=3.0)

    async def traffic():
        for lim in lims:
            await lim.acquire(scoped("k", 1e4, 1e4), 1)

    await run_for(clock, lims, 12.0, each_step=traffic)
    follower = next(lim for lim in lims if not lim._sync.leading)
    store.failing, before = True, store.puts
    await run_for(clock, [follower], 30.0, each_step=lambda: follower.acquire(
        scoped("k", 1e4, 1e4), 1))
    assert follower.counters["tally_waits"] > 0  # its view went stale: it tried to sync
    assert store.puts - before <= 30.0 / 3.0 + 1, store.puts - before  # one row per period


def test_a_cut_summary_keeps_the_keys_many_instances_share():
    """12,000 fresh ids at 4/3 of their limit, each on one instance, outranked the global key
    (held by every instance, at 6/5) when the list was cut by utilisation: unlisted, the
    global key ran on a cold share and honest traffic got 0.72 of an exact limiter's at
    1,000 instances. Keys held by more instances are listed first; phi still bounds every
    key left out."""
    period, rate = 7, 250.0
    flood = {f"a{k:05d}": (1000.0, rate) for k in range(12_000)}
    rows = [tally.InstanceRow(f"m{i}", period, 21.0,
                              {**(flood if i == 0 else {}), "global": (1.2 * rate * 3.0 / 8, rate)})
            for i in range(8)]
    view = tally.aggregate(rows, period, 3.0)
    assert "global" in view.hot and view.hot["global"][1] == 8
    assert len(view.hot) < len(flood)
    left_out = [kid for kid in flood if kid not in view.hot]
    assert left_out and view.phi >= 1000.0 / (rate * 3.0)  # every key left out is below phi
