"""Tally mode under ServerBusy (issue #23, third round): the aggregator keeps what it read and
wrote when part of a period's storage calls are refused, so a retry costs only what failed.
Virtual clock, in-memory store; refusals injected per partition."""

from __future__ import annotations

import random

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.core.store_errors import StoreUnavailable
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.engine import PROBE_KEY
from function_app.ratelimit.guarded import GuardedStore, StorageHealth
from function_app.ratelimit.store import RowKey
from function_app.ratelimit.tally import rows as tally_rows
from function_app.ratelimit.tally import tally
from function_app.ratelimit.tally.aggregator import Aggregator, copy_key, group_key
from tests.support.clock import FakeClock

P = 3.0
START = 1_700_000_000.0


class Refusing(MemoryRateLimitStore):
    """Refuses the next call on a partition listed in `refuse` (once per listing); counts
    queries and puts per partition."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: set[str] = set()
        self.queries: dict[str, int] = {}
        self.puts: dict[str, int] = {}

    def _gate(self, partition: str) -> None:
        if partition in self.refuse:
            self.refuse.discard(partition)
            raise StoreUnavailable("503 ServerBusy")

    async def query(self, partition):
        self.queries[partition] = self.queries.get(partition, 0) + 1
        self._gate(partition)
        return await super().query(partition)

    async def put(self, key, fields):
        self.puts[key.partition] = self.puts.get(key.partition, 0) + 1
        self._gate(key.partition)
        return await super().put(key, fields)


async def leading(groups: int):
    clock = FakeClock(start=START)
    store = Refusing()
    guarded = GuardedStore(store, StorageHealth(clock, random.Random(1), 0.1, 1.0), Counters(),
                           1e9)
    agg = Aggregator(guarded, clock, P, groups, "me", RowKey(group_key(0), "me"), Counters())
    done = int(clock.now() // P) - 1
    for g in range(groups):  # one instance row per group, of period `done`
        fields, _ = tally_rows.instance_fields(done, clock.now(), {"k": 5.0}, {"k": 10.0}, 5.0)
        await store.put(RowKey(group_key(g), f"{g:016x}"), fields)
    store.puts.clear()
    assert await agg.claim(done, None)
    return clock, store, agg, done


@pytest.mark.asyncio
async def test_a_refused_group_query_is_retried_alone():
    """Under 50 % ServerBusy the ten group queries of 1,000 instances all succeeded about once
    in a thousand tries, and every retry queried all ten again (the simulator's hottest
    partition: 8,452 entities/s). A retry now reads only the group that was refused."""
    clock, store, agg, done = await leading(4)
    store.refuse = {group_key(2)}
    with pytest.raises(StoreUnavailable):
        await agg.aggregate(done, clock.now())
    view = await agg.aggregate(done, clock.now())
    assert view is not None and view.instances == 4
    assert store.queries == {group_key(0): 1, group_key(1): 1, group_key(2): 2,
                             group_key(3): 1}


@pytest.mark.asyncio
async def test_a_refused_summary_copy_is_put_again_without_aggregating_again():
    """A refused copy made the whole aggregate fail and run again (every group read and the
    summary written once more). Now the aggregate stands and the next tick puts only the
    copy that is missing."""
    clock, store, agg, done = await leading(4)
    store.refuse = {copy_key(1).partition}
    view = await agg.aggregate(done, clock.now())
    assert view is not None and view.instances == 4 and agg.aggregated == done
    await agg.tick(done, clock.now())  # the same period: nothing to aggregate, a copy owed
    await agg.tick(done, clock.now())
    assert sum(store.queries.values()) == 4  # read once each
    assert store.puts[copy_key(1).partition] == 2
    assert store.puts[copy_key(0).partition] == 1
    copy = await store.read(copy_key(1))
    assert copy is not None and tally_rows.parse_summary(copy.fields)[0].instances == 4
    assert tally.STALE_PERIODS >= 1


class Busy(MemoryRateLimitStore):
    """While `failing`, refuses puts of instance rows: every one (`every`), or every other
    one per row (half of them, as 50 % ServerBusy does); counts puts per row and summary
    reads."""

    def __init__(self) -> None:
        super().__init__()
        self.failing, self.every = False, True
        self.puts: dict[str, int] = {}
        self.summary_reads = 0

    async def put(self, key, fields):
        if key.partition.startswith("_tally.g"):
            tries = self.puts[key.row] = self.puts.get(key.row, 0) + 1
            if self.failing and (self.every or tries % 2):
                raise StoreUnavailable("503 ServerBusy")
        return await super().put(key, fields)

    async def read(self, key):
        if key.partition == "_tally":
            self.summary_reads += 1
        return await super().read(key)


async def busy_follower(store: Busy):
    from tests.unit.test_tally_limiter import fleet, run_for, scoped

    clock, _, lims = fleet(2, store=store, tally_period_s=P)

    async def traffic():
        for lim in lims:
            await lim.acquire(scoped("k", 1e4, 1e4), 1)

    await run_for(clock, lims, 12.0, each_step=traffic)
    follower = next(lim for lim in lims if not lim._sync.leading)
    return clock, lims, follower, traffic, run_for


@pytest.mark.asyncio
async def test_a_refused_row_is_tried_once_more_per_period_not_on_every_tick():
    """A refused row was written again on every tick the back-off allowed (four or more puts
    per period with storage refusing them): each refusal is an operation that Azure asks us
    not to make. Now: the row, and one jittered retry; then the next period's row."""
    store = Busy()
    clock, lims, follower, traffic, run_for = await busy_follower(store)
    me = follower._sync.me
    store.failing, before = True, store.puts[me]
    await run_for(clock, lims, 10 * P, each_step=traffic)
    assert store.puts[me] - before <= 2 * 10 + 1, store.puts[me] - before


@pytest.mark.asyncio
async def test_throttled_an_instance_reads_the_summary_every_other_period():
    """Under ServerBusy every read costs about two attempts; a view stays usable for
    STALE_PERIODS, so while throttled an instance reads the summary only when its view is two
    periods old. Half of its rows refused (each accepted on the retry): about five reads in
    ten periods instead of ten, and its view usable throughout (no failure mode)."""
    store = Busy()
    clock, lims, follower, traffic, run_for = await busy_follower(store)
    before = store.summary_reads
    await run_for(clock, lims, 10 * P, each_step=traffic)
    calm = store.summary_reads - before
    store.failing, store.every, before = True, False, store.summary_reads
    usable = []

    async def watched():
        await traffic()
        usable.append(follower._sync.usable(clock.now()))

    await run_for(clock, lims, 10 * P, each_step=watched)
    throttled = store.summary_reads - before
    assert calm >= 9 and throttled <= 6, (calm, throttled)
    assert all(usable) and follower.counters["fallback_admitted"] == 0


class Probed(MemoryRateLimitStore):
    """Refuses every call while `failing`; counts reads of the probe row."""

    def __init__(self) -> None:
        super().__init__()
        self.failing, self.probes = True, 0

    async def read(self, key):
        if key == PROBE_KEY:
            self.probes += 1
        if self.failing:
            raise StoreUnavailable("503 ServerBusy")
        return await super().read(key)

    async def put(self, key, fields):
        if self.failing:
            raise StoreUnavailable("503 ServerBusy")
        return await super().put(key, fields)


@pytest.mark.asyncio
async def test_an_instance_with_traffic_and_no_view_makes_no_probes():
    """Without a view, maintenance probed failing storage after every refusal although the
    requests' own syncs try it every half period: under 50 % ServerBusy the probes were 30 %
    of all storage operations at 1,000 instances. An idle instance still probes, so storage
    answering again shows on /healthz without traffic."""
    from tests.unit.test_tally_limiter import fleet, run_for, scoped

    store = Probed()
    clock, _, (busy, idle) = fleet(2, store=store, tally_period_s=P)
    await run_for(clock, [busy], 10 * P, each_step=lambda: busy.acquire(scoped(), 1))
    assert busy.counters["tally_waits"] > 0 and store.probes == 0, store.probes
    await idle.acquire(scoped(), 1)  # one request, refused storage; then no traffic
    await run_for(clock, [idle], 10 * P)
    assert store.probes > 0


@pytest.mark.asyncio
async def test_a_light_instance_reads_the_summary_every_other_period():
    """A read per period cost an instance with ten requests a period 0.1 operations per
    request (under attack, 0.054 per admitted request at 1,000 instances, most of them
    light). Below LIGHT_TRAFFIC requests a period it reads every other period; its view stays
    usable and its requests are not refused for it. A busy instance reads every period."""
    from tests.unit.test_tally_limiter import fleet, run_for, scoped

    store = Busy()
    clock, _, lims = fleet(3, store=store, tally_period_s=P)
    step = {"n": 0}

    async def traffic():  # every 0.05 s: 60 requests a period to each, or 10 to the last
        step["n"] += 1
        for lim in lims[:2]:
            await lim.acquire(scoped("k", 1e4, 1e4), 1)
        if step["n"] % 6 == 0:
            await lims[2].acquire(scoped("k", 1e4, 1e4), 1)

    await run_for(clock, lims, 12.0, each_step=traffic)
    reads = {lim._sync.me: 0 for lim in lims}
    original = store.read

    async def counted(key):
        if key.partition == "_tally":
            reads[current["me"]] += 1
        return await original(key)

    current = {"me": None}
    for lim in lims:
        lim._sync._summary._store = Who(lim._sync._summary._store, lim._sync.me, current)
    store.read = counted
    await run_for(clock, lims, 10 * P, each_step=traffic)
    light, busy = reads[lims[2]._sync.me], max(reads[lim._sync.me] for lim in lims[:2]
                                                if not lim._sync.leading)
    assert busy >= 9 and light <= 6, (busy, light)
    assert lims[2]._sync.usable(clock.now()) and lims[2].counters["denied"] == 0


class Who:
    """A store wrapper telling which instance is calling (for per-instance read counts)."""

    def __init__(self, inner, me, current) -> None:
        self._inner, self._me, self._current = inner, me, current

    def __getattr__(self, name):
        target = getattr(self._inner, name)

        async def call(*args, **kw):
            self._current["me"] = self._me
            return await target(*args, **kw)

        return call


@pytest.mark.asyncio
async def test_a_refused_aggregate_waits_before_reading_again():
    """A refused query was retried on the next tick (0.125 s on), adding its rows again to
    a partition's one-second window already past its target: the simulator's hottest
    partition under ServerBusy. The aggregator now waits RETRY_S."""
    from function_app.ratelimit.tally.aggregator import RETRY_S

    clock, store, agg, done = await leading(2)
    store.refuse = {group_key(1)}
    done += 1
    await clock.advance((done + 1.6) * P - clock.now())  # past AGGREGATE_AT after `done`
    with pytest.raises(StoreUnavailable):
        await agg.tick(done, clock.now())
    await clock.advance(0.125)
    assert await agg.tick(done, clock.now()) is None
    assert store.queries[group_key(1)] == 1
    await clock.advance(RETRY_S)
    assert await agg.tick(done, clock.now()) is not None
    assert store.queries == {group_key(0): 1, group_key(1): 2}


@pytest.mark.asyncio
async def test_a_refused_sync_on_requests_waits_a_period_not_half():
    """An instance without a view synced (a row and a read) every half period on its
    requests however often storage refused: under ServerBusy most of a fleet starting
    together. After a refusal it waits a whole period between syncs."""
    from tests.unit.test_tally_limiter import fleet, run_for, scoped

    store = Probed()
    clock, _, (lim, _other) = fleet(2, store=store, tally_period_s=P)
    calls = {"n": 0}
    original = store.read

    async def counted(key):
        calls["n"] += 1
        return await original(key)

    store.read = counted
    await run_for(clock, [lim], 10 * P, each_step=lambda: lim.acquire(scoped(), 1))
    assert lim._sync.view is None and 8 <= calls["n"] <= 11, calls["n"]
