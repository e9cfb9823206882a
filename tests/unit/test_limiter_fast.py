"""The limiters' fast paths (lease/fast.py, tally/fast.py) decide exactly as the full paths.

The same seeded traffic (sequential and concurrent requests, costs that bind and do not, a cost
above a burst, a shadow scope, settlements, a limit replaced by an equal object and then by a
different one, maintenance) runs through a limiter and through one whose fast path is switched
off, each on its own fake clock and memory store: every Decision, the counters, each key's
state and the stored rows must be the same, and the fast path must have decided most requests.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import fields
from types import SimpleNamespace

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease import fast as lease_fast
from function_app.ratelimit.lease.keystate import KeyState
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.tally import fast as tally_fast
from function_app.ratelimit.tally.budgets import OnDemand
from function_app.ratelimit.tally.limiter import TallyLimiter
from tests.support.clock import FakeClock, settle

START = 1_700_000_000.0


class SlowLease(Limiter):
    def _admit(self, scoped, cost):
        return None


class SlowOnDemand(OnDemand):
    def _admit(self, scoped, cost):
        return None


class SlowTally(TallyLimiter):
    def _admit(self, scoped, cost):
        return None


def traffic(seed: int, steps: int) -> list[tuple]:
    """(gap in seconds, [(client, cost), ...] sent together, settle delta or None) per step."""
    rnd = random.Random(seed)
    plan = []
    for _ in range(steps):
        batch = [(f"c{rnd.randrange(5)}", rnd.choice((1, 1, 1, 1, 2, 3, 45)))
                 for _ in range(rnd.choice((1, 1, 1, 2, 4)))]
        delta = rnd.choice((None, None, None, -1.0, 2.0))
        plan.append((rnd.expovariate(40.0), batch, delta))
    return plan


def limits_at(step: int, steps: int) -> dict[str, Limit]:
    """The client limit object in force: replaced by an equal one, then by a tighter one."""
    third = steps // 3
    if step < third:
        return CLIENT_A
    return CLIENT_B if step < 2 * third else CLIENT_C


CLIENT_A, CLIENT_B, CLIENT_C = Limit(30.0, 40.0), Limit(30.0, 40.0), Limit(8.0, 12.0)
GLOBAL = Limit(400.0, 800.0)
SHADOW = Limit(5.0, 10.0, shadow=True)


def scoped_for(client: str, client_limit: Limit) -> list[ScopedLimit]:
    scoped = [ScopedLimit("global", "global", GLOBAL, 2),
              ScopedLimit("client", client, client_limit)]
    if client == "c4":
        scoped.append(ScopedLimit("route", "/shadowed", SHADOW))
    return scoped


async def run(limiter, clock: FakeClock, plan: list[tuple], every_maintain: int) -> list:
    seen = []
    for step, (gap, batch, delta) in enumerate(plan):
        await clock.advance(gap)
        limit = limits_at(step, len(plan))
        asks = [limiter.acquire(scoped_for(client, limit), cost) for client, cost in batch]
        decisions = await asyncio.gather(*asks)
        seen.append(decisions)
        if delta is not None and decisions[0].allowed:
            limiter.adjust(scoped_for(batch[0][0], limit), delta)
        if step % every_maintain == 0:
            await limiter.maintain()
        await settle(3)
    return seen


def states(limiter) -> dict:
    skip = {"fetch", "admitted", "view", "demand", "admitted_left", "full_from", "quiet_demand",
            "quiet_cost", "quiet_tokens"}
    return {name: {f.name: getattr(state, f.name) for f in fields(state) if f.name not in skip}
            for name, state in limiter._keys.items()}


async def both(fast_cls, slow_cls, config: LimiterConfig, plan, every_maintain=25):
    results = []
    for cls in (fast_cls, slow_cls):
        clock, store = FakeClock(start=START), MemoryRateLimitStore()
        limiter = cls(store, clock, config, "gw", background=False, rng=random.Random(7))
        decisions = await run(limiter, clock, plan, every_maintain)
        counters = limiter.counters
        fast_admitted = counters.pop("fast_admitted")
        snapshot = (decisions, counters, states(limiter), fast_admitted)
        await limiter.close()
        rows = sorted((r.key.partition, r.key.row, sorted(r.fields.items()))
                      for r in store._rows.values())
        results.append((snapshot, rows, limiter))
    return results


@pytest.mark.asyncio
@pytest.mark.parametrize(("seed", "classes"), [(1, (Limiter, SlowLease)),
                                               (2, (Limiter, SlowLease)),
                                               (3, (Limiter, SlowLease)),
                                               (4, (OnDemand, SlowOnDemand))])
async def test_lease_fast_path_decides_as_the_full_path(seed, classes):
    """OnDemand (tally's budgets) replaces _maybe_refill: no background top-ups there."""
    plan = traffic(seed, 900)
    (fast, fast_rows, _), (slow, slow_rows, _) = await both(*classes, LimiterConfig(), plan)
    assert fast[0] == slow[0]  # every Decision, in order
    assert fast[1] == slow[1]  # counters (fast_admitted aside)
    assert fast[2] == slow[2]  # every key's pool, demand, row view and caps
    assert fast_rows == slow_rows
    assert {True, False} <= {d.allowed for batch in fast[0] for d in batch}
    assert fast[3] > fast[1]["decisions"] / 3 and slow[3] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", [1, 2])
async def test_tally_fast_path_decides_as_the_full_path(seed):
    plan = traffic(seed, 900)
    config = LimiterConfig(sync="tally", tally_period_s=1.0, storage_timeout_s=1e9)
    (fast, fast_rows, limiter), (slow, slow_rows, other) = await both(
        TallyLimiter, SlowTally, config, plan, every_maintain=5)
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    assert fast[2] == slow[2]  # buckets, shares, provisional spend
    assert fast_rows == slow_rows  # the published rows: what storage saw is unchanged
    assert limiter._sync.ledger._raw == other._sync.ledger._raw
    assert {True, False} <= {d.allowed for batch in fast[0] for d in batch}
    assert fast[3] > fast[1]["decisions"] / 2 and slow[3] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("cls", [Limiter, SlowLease])
async def test_far_limits_report_the_first_of_equal_scopes_and_reuse_one_decision(cls):
    far = Limit(1e6, 1e6)
    scoped = [ScopedLimit("global", "global", far), ScopedLimit("client", "c1", far)]
    clock = FakeClock(start=START)
    limiter = cls(MemoryRateLimitStore(), clock, LimiterConfig(), "gw", background=False)
    decisions = []
    for _ in range(50):  # a request a millisecond: a thousand tokens refill between them
        decisions.append(await limiter.acquire(scoped))
        await clock.advance(0.001)
    assert {(d.allowed, d.scope, d.remaining, d.reset_s) for d in decisions[1:]} == {
        (True, "global", 999_999, 1e-6)}
    if cls is Limiter:  # unchanged figures: the same immutable Decision, not a new one each
        assert len({id(d) for d in decisions[2:]}) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("throttled", [False, True])
async def test_tally_fast_path_never_skips_a_sync_the_full_path_would_make(throttled):
    """tally/fast.py decides without TallySync.stale for a view up to FRESH_PERIODS old: that
    view must be neither stale (whether the sync is sparing or not) nor unusable."""
    clock = FakeClock(start=START)
    config = LimiterConfig(sync="tally", tally_period_s=1.0, storage_timeout_s=1e9)
    limiter = TallyLimiter(MemoryRateLimitStore(), clock, config, "gw", background=False)
    for _ in range(40):  # traffic and upkeep until a summary is read
        await limiter.acquire(scoped_for("c0", CLIENT_A))
        await limiter.maintain()
        await clock.advance(0.1)
    sync = limiter._sync
    assert sync.view is not None
    if throttled:
        sync._throttled_until = float("inf")
    start = sync.view.period * sync.period_s
    for step in range(int((tally_fast.FRESH_PERIODS + 1) * 100)):
        now = start + step / 100
        assert not sync.stale(now) and sync.usable(now), now - start


@pytest.mark.parametrize("seed", range(4))
def test_the_fast_path_starts_every_top_up_the_full_refill_test_would(seed):
    """lease/fast.py inlines the refill test and skips it for a key it found quiet: for any
    pool, demand, cost, cap and settings, over a run of requests on one key (the demand rising
    and falling, the cap changed, the pool topped up), it reports the keys due exactly as
    KeyState.spend, observe and needs_refill do (pools at and around the threshold included),
    so a change to either shows here."""
    rnd = random.Random(seed)
    config = LimiterConfig()
    skipped = due = quiet = 0
    for _ in range(1500):
        lease_s = rnd.choice((config.lease_s, 0.5, 3.0))
        hold_s = rnd.choice((config.hold_s, 0.0, 10.0))
        tau_s = rnd.choice((config.demand_tau_s, 0.5, 30.0))
        burst = rnd.choice((1.0, 40.0, 1e6))
        scoped = ScopedLimit("client", "c", Limit(burst, burst), reserved=rnd.random() < 0.2)
        demand = rnd.expovariate(1 / rnd.choice((1, 50, 5e4)))
        cap = rnd.choice((float("inf"), burst / 2, 3.0))
        made = []
        for _ in range(2):
            ks = KeyState.create(scoped, 0.0, START)
            ks.demand_amount, ks.demand_ts, ks.cap, ks.expires_at = demand, START, cap, START + 10
            made.append(ks)
        fast_ks, full_ks = made
        found: list[KeyState] = []
        clock = FakeClock(start=START)
        health = SimpleNamespace(down_until=0.0)  # StorageHealth: backing off until then
        path = lease_fast.FastPath({("client", "c"): fast_ks}, clock, health, tau_s, lease_s,
                                   hold_s, found.append)
        now, cost = START, rnd.choice((0.0, 1.0, 1.0, 3.0, 45.0))
        for _ in range(8):
            if rnd.random() < 0.2:
                cost = rnd.choice((0.0, 1.0, 3.0, 45.0))
            if rnd.random() < 0.1:
                new_cap = rnd.choice((float("inf"), burst / 2, 3.0))
                for ks in made:
                    ks.capped(new_cap)
            now += rnd.choice((0.0, 0.001, 0.001, 0.01, 0.5))
            clock._now = now
            # a pool near the threshold the full test would find after this request
            probe = KeyState.create(scoped, 0.0, START)
            probe.demand_amount, probe.demand_ts, probe.cap = \
                full_ks.demand_amount, full_ks.demand_ts, full_ks.cap
            probe.observe(cost, now, tau_s)
            goal = min(probe.target(now, lease_s, tau_s, hold_s), probe.cap)
            unit = min(cost, goal)
            threshold = unit + (goal - unit) * lease_fast.REFILL_AT
            if rnd.random() < 0.6 or fast_ks.tokens < cost:
                pool = cost + threshold * rnd.choice((0.0, 0.5, 0.999, 1.0, 1.0 + 1e-12, 1.001,
                                                      1.1, 1.3, 2.0, 10.0))
                fast_ks.tokens = full_ks.tokens = pool
            found.clear()
            health.down_until = now + 1.0 if rnd.random() < 0.1 else 0.0
            before = fast_ks.quiet_demand
            if path.admit([scoped], cost) is None:  # a cost above the burst
                assert cost > burst
                continue
            full_ks.spend(cost)
            full_ks.observe(cost, now, tau_s)
            want = full_ks.needs_refill(now, lease_s, tau_s, hold_s) and not health.down_until
            assert (found == [fast_ks]) == want
            assert (fast_ks.tokens, fast_ks.demand_amount, fast_ks.demand_ts) == \
                (full_ks.tokens, full_ks.demand_amount, full_ks.demand_ts)
            due += want
            skipped += not want
            quiet += fast_ks.quiet_demand == before >= 0 and not want
    assert due > 500 and skipped > 500 and quiet > 500  # each outcome, the quiet one included
