"""The limiter in tally mode on a virtual clock and the in-memory store: decisions, storage
cost per period, the aggregator's takeover, failure modes, refunds and the overshoot bound."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.tally import tally
from function_app.ratelimit.tally.aggregator import SUMMARY
from function_app.ratelimit.tally.limiter import TallyLimiter
from tests.support.bounds import tally_admitted_bound
from tests.support.clock import FakeClock, SkewedClock, settle
from tests.support.stores import FlakyRateLimitStore

P = 1.0
START = 1_700_000_000.0


def config(**kw) -> LimiterConfig:
    return LimiterConfig(**{"sync": "tally", "tally_period_s": P, "expected_instances": 4,
                            "storage_timeout_s": 1e9, **kw})


def fleet(n, store=None, clock=None, seed=1, **kw):
    clock = clock or FakeClock(start=START)
    store = store or MemoryRateLimitStore()
    limiters = [TallyLimiter(store, clock, config(**kw), f"i{k}", background=False,
                             rng=random.Random(seed * 100 + k)) for k in range(n)]
    return clock, store, limiters


async def run_for(clock, limiters, seconds, step=0.05, each_step=None):
    for _ in range(round(seconds / step)):
        if each_step is not None:
            await each_step()
        for lim in limiters:
            await lim.maintain()
        await clock.advance(step)
        await settle()


def scoped(key="k", rate=10.0, burst=20.0, scope="client", **kw):
    return [ScopedLimit(scope, key, Limit(rate, burst, **kw))]


@pytest.mark.asyncio
async def test_one_instance_is_an_exact_token_bucket():
    clock, _, (lim,) = fleet(1)
    admitted = [(await lim.acquire(scoped(), 1)).allowed for _ in range(25)]
    assert admitted == [True] * 20 + [False] * 5
    denied = await lim.acquire(scoped(), 1)
    assert not denied.allowed and denied.scope == "client" and 0 < denied.retry_after_s <= 0.2
    await run_for(clock, [lim], 1.0)
    await clock.advance(0.01)  # 1.01 s of refill at 10/s: ten whole tokens
    assert sum([(await lim.acquire(scoped(), 1)).allowed for _ in range(15)]) == 10


@pytest.mark.asyncio
async def test_storage_calls_are_per_period_not_per_request_or_key():
    clock, _, lims = fleet(3)
    ops_before = None

    async def traffic():
        for lim in lims:
            for c in range(20):  # 20 keys per instance per step
                await lim.acquire(scoped(f"c{c}", rate=1e6, burst=1e6) + scoped(
                    "g", 1e6, 1e6, scope="global"), 1)

    await run_for(clock, lims, 2.0, each_step=traffic)
    ops_before = sum(lim.counters["storage_round_trips"] for lim in lims)
    await run_for(clock, lims, 10.0, each_step=traffic)
    ops = sum(lim.counters["storage_round_trips"] for lim in lims) - ops_before
    admitted = sum(lim.counters["admitted"] for lim in lims)
    assert admitted > 10_000
    # Per period: 3 instances x (put + read), the aggregator's query + write; 10 periods.
    assert ops <= 10 * (3 * 2 + 2) + 4
    assert sum(lim.counters["tally_aggregations"] for lim in lims) >= 9


@pytest.mark.asyncio
async def test_an_idle_fleet_makes_no_storage_calls():
    clock, _, lims = fleet(2)
    for lim in lims:
        await lim.acquire(scoped(), 1)
    await run_for(clock, lims, 8.0)
    before = sum(lim.counters["storage_round_trips"] for lim in lims)
    await run_for(clock, lims, 10.0)
    assert sum(lim.counters["storage_round_trips"] for lim in lims) == before


@pytest.mark.asyncio
async def test_a_new_aggregator_takes_over_when_the_old_one_leaves():
    clock, store, lims = fleet(3)

    async def traffic():
        for lim in lims:
            await lim.acquire(scoped(rate=1e3, burst=1e3), 1)

    await run_for(clock, lims, 3.0, each_step=traffic)
    first = (await store.read(SUMMARY)).fields["by"]
    leader = next(lim for lim in lims if tally.member_id(lim.instance) == first)
    await leader.close()
    lims.remove(leader)
    await run_for(clock, lims, 6.0, each_step=traffic)
    summary = (await store.read(SUMMARY)).fields
    assert summary["by"] != first and summary["at"] >= clock.now() - 2 * P
    assert summary["n"] == 2.0  # the leaver's row was deleted
    assert sum(lim.counters["tally_takeovers"] for lim in lims) == 1


@pytest.mark.asyncio
async def test_demand_moves_the_shares_to_where_the_traffic_is():
    clock, _, (a, b) = fleet(2)
    limit = scoped(rate=100.0, burst=100.0)
    admitted = {"a": 0, "b": 0}

    async def traffic():
        for _ in range(8):  # 160/s asked at a, none at b: a gets almost all of 100/s
            admitted["a"] += (await a.acquire(limit, 1)).allowed

    await run_for(clock, [a, b], 6.0, each_step=traffic)
    admitted["a"] = 0
    await run_for(clock, [a, b], 4.0, each_step=traffic)
    assert 0.85 * 400 <= admitted["a"] <= 400 + 100


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.asyncio
async def test_what_a_fleet_admits_over_any_window_stays_within_the_stated_bound(seed):
    """Random arrivals over 4 instances, moving between them: admitted in every window of
    the run within tally_admitted_bound (tests/support/bounds.py; every instance joins
    uncounted once)."""
    rng = random.Random(seed)
    n, rate, burst = 4, 40.0, 40.0
    clock, _, lims = fleet(n, seed=seed)
    times: list[float] = []

    async def traffic():
        weights = [rng.random() ** 3 for _ in lims] if rng.random() < 0.1 else None
        for _ in range(rng.randint(0, 8)):
            lim = rng.choices(lims, weights)[0] if weights else rng.choice(lims)
            if (await lim.acquire(scoped(rate=rate, burst=burst), 1)).allowed:
                times.append(clock.now())

    await run_for(clock, lims, 12.0, each_step=traffic)
    assert len(times) > 300
    for window in (0.5, 2.0, 6.0, 12.0):
        allowed = tally_admitted_bound(Limit(rate, burst), n, 1, P, window, n, 4)
        worst = max(sum(1 for t in times if start <= t < start + window) for start in times)
        assert worst <= allowed, (window, worst, allowed)


@pytest.mark.asyncio
async def test_refunds_come_back_to_the_bucket_that_paid():
    _, _, (lim,) = fleet(1)
    limit = scoped(rate=1.0, burst=1000.0)
    assert (await lim.acquire(limit, 900)).allowed
    assert not (await lim.acquire(limit, 200)).allowed
    lim.adjust(limit, -850)  # used 50 of 900
    assert (await lim.acquire(limit, 200)).allowed
    assert lim.counters["refunded_tokens"] == 850


@pytest.mark.asyncio
async def test_a_shadow_limit_reports_but_never_denies():
    _, _, (lim,) = fleet(1)
    decisions = [await lim.acquire(scoped(rate=1.0, burst=2.0, shadow=True), 1) for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert decisions[-1].shadow_scope == "client"
    assert lim.counters["shadow_denied"] == 3


@pytest.mark.parametrize("mode", ["open", "closed"])
@pytest.mark.asyncio
async def test_storage_down_follows_the_failure_mode_and_recovers(mode):
    clock = FakeClock(start=START)
    flaky = FlakyRateLimitStore(MemoryRateLimitStore())
    _, _, (lim,) = fleet(1, store=flaky, clock=clock, failure_mode=mode)
    limit = scoped(rate=1e3, burst=1e3)
    assert (await lim.acquire(limit, 1)).allowed
    flaky.down = True
    await run_for(clock, [lim], 8.0)  # the view goes stale
    decision = await lim.acquire(limit, 1)
    assert decision.degraded
    if mode == "closed":
        assert not decision.allowed and decision.storage_unavailable
    else:
        assert decision.allowed and decision.reason == "ok"
    assert not lim.storage_healthy
    flaky.down = False
    await run_for(clock, [lim], 3.0)
    decision = await lim.acquire(limit, 1)
    assert decision.allowed and not decision.degraded
    assert lim.storage_healthy


@pytest.mark.asyncio
async def test_a_cost_above_the_burst_is_never_admitted_and_says_so():
    _, _, (lim,) = fleet(1)
    decision = await lim.acquire(scoped(rate=5.0, burst=10.0), 11)
    assert not decision.allowed and decision.retry_after_s >= 3600


@pytest.mark.asyncio
async def test_all_or_nothing_a_client_denial_spends_no_global_tokens():
    _, _, (lim,) = fleet(1)
    both = scoped("g", 100.0, 3.0, scope="global") + scoped("c", 1.0, 1.0)
    assert (await lim.acquire(both, 1)).allowed
    assert not (await lim.acquire(both, 1)).allowed
    only_global = scoped("g", 100.0, 3.0, scope="global")
    assert [(await lim.acquire(only_global, 1)).allowed for _ in range(3)] == [True, True, False]


@pytest.mark.asyncio
async def test_instances_starting_together_are_counted_within_a_second():
    """The first summary counts only the aggregator, which would hold the whole limit for a
    period; it counts the others again every half second after taking over."""
    clock = FakeClock(start=START + 0.1)
    _, store, lims = fleet(3, clock=clock, tally_period_s=3.0)
    for lim in lims:
        await lim.acquire(scoped(rate=100.0, burst=100.0), 1)
    first = (await store.read(SUMMARY)).fields["n"]
    await run_for(clock, lims, 1.0)
    assert first == 1.0 and (await store.read(SUMMARY)).fields["n"] == 3.0
    leader = next(lim for lim in lims if lim.counters["tally_takeovers"])
    burst = [(await leader.acquire(scoped(rate=100.0, burst=100.0), 1)).allowed
             for _ in range(100)]
    assert sum(burst) < 70  # no longer alone: its share of the burst, not the whole of it


@pytest.mark.asyncio
async def test_a_lone_instance_keeps_its_whole_share_through_its_first_periods():
    """Token reservations far under the limit, settled at once: nothing is refused while the
    aggregator re-counts after taking over (an empty re-count once cut the share to 1/E, and
    the clipped tokens never came back: bench_tokens saw 5,000 refusals)."""
    clock = FakeClock(start=START + 0.2)
    _, _, (lim,) = fleet(1, clock=clock, tally_period_s=3.0)
    tpm = [ScopedLimit("client_tpm", "k1", Limit(200_000 / 60, 200_000), reserved=True)]
    refused = 0
    for step in range(800):  # 8 s, 800 completions a second, 1,029 reserved, 21 used
        for _ in range(8):
            if (await lim.acquire(tpm, 1029)).allowed:
                lim.adjust(tpm, -1008)
            else:
                refused += 1
        if step % 10 == 0:
            await lim.maintain()
        await clock.advance(0.01)
        await settle()
    assert refused == 0
    assert lim.counters["refunded_tokens"] == 6400 * 1008


@pytest.mark.asyncio
async def test_a_joiner_serving_a_key_alone_gets_the_whole_rate_once_counted():
    """A joiner decides on 1 / E until a summary counts its demand on a key; then its bucket is
    made again at its counted share: what it opened with, less what it spent, plus the new
    share's refill since, so a client living on its TPM burst is served at the whole rate
    (clipped tokens never came back: bench_tokens refused it for good). Not full again: a
    burst collected afresh at each instance let a client hopping instances take 2.23x its
    allowance (issue #23). What it is refused meanwhile is the cost of joining
    (docs/ratelimit-tally.md)."""
    clock = FakeClock(start=START + 0.2)
    _, _, (a, b) = fleet(2, clock=clock, tally_period_s=3.0)
    await a.acquire(scoped("other"), 1)  # a aggregates; b has never synced
    await run_for(clock, [a, b], 4.0, each_step=lambda: a.acquire(scoped("other"), 1))
    rate = 200_000 / 60
    tpm = [ScopedLimit("client_tpm", "k1", Limit(rate, 200_000), reserved=True)]
    used_after = 0.0
    for step in range(1000):  # 10 s at 800 completions/s: 16,800 used a second, 3,333 refill
        for _ in range(8):
            if (await b.acquire(tpm, 1029)).allowed:
                b.adjust(tpm, -1008)
                used_after += 21 if clock.now() - START >= 12.0 else 0
        if step % 10 == 0:
            await a.maintain()
            await b.maintain()
        await clock.advance(0.01)
        await settle()
    # Counted by 10.1 s: from then on served at (about) the key's whole rate, never above it.
    assert 0.8 * rate * 2.2 <= used_after <= 200_000 + rate * 2.2


@pytest.mark.asyncio
async def test_a_changed_limit_takes_effect_at_once():
    """Overrides arrive with each request's scoped limits: the share is computed again."""
    clock, _, (lim,) = fleet(1)
    loose = [(await lim.acquire(scoped(rate=10.0, burst=20.0), 1)).allowed for _ in range(5)]
    tight = [(await lim.acquire(scoped(rate=1.0, burst=2.0), 1)).allowed for _ in range(3)]
    assert loose == [True] * 5 and tight == [True, True, False]  # 15 left, clipped to burst 2
    await run_for(clock, [lim], 3.0)
    assert (await lim.acquire(scoped(rate=1.0, burst=2.0), 1)).allowed


@pytest.mark.asyncio
async def test_a_flood_of_huge_requests_neither_raises_phi_nor_starves_honest_clients(
        monkeypatch):
    """Issue #23: client ids each sending one request far above their burst (max_tokens 1e9)
    counted as demand, drove phi to thousands, and every unlisted key's share went to 0:
    honest clients got nothing, refused at the global scope. A cost no bucket can hold is no
    demand, and a cut summary leaves unlisted keys a floor."""
    monkeypatch.setattr(tally, "MAX_HOT_KEYS", 20)
    clock, _, lims = fleet(4)
    attackers = iter(range(10**6))
    honest = {"admitted": 0, "asked": 0}

    async def traffic():
        for lim in lims:
            for _ in range(10):  # 10 attacker ids per instance per step
                await lim.acquire(scoped(f"a{next(attackers)}", 10.0, 20.0), 1e9)
        lim = lims[honest["asked"] % 4]
        honest["asked"] += 1  # 20 requests/s from one honest client, limit 1,000/s: unlisted
        decision = await lim.acquire(scoped("honest", 1000.0, 1000.0), 1)
        honest["admitted"] += decision.allowed

    await run_for(clock, lims, 10.0, each_step=traffic)
    assert honest["asked"] == 200 and honest["admitted"] >= 0.95 * honest["asked"]
    assert all(lim._sync.view.phi <= 1.0 for lim in lims if lim._sync.view)


@pytest.mark.asyncio
async def test_a_cut_summary_with_phi_above_one_leaves_the_global_key_a_share(monkeypatch):
    """Without an attacker: many clients above their limits give phi > 1 after the cut; the
    global key, under a tenth of its limit and so unlisted, must still admit."""
    monkeypatch.setattr(tally, "MAX_HOT_KEYS", 5)
    clock, _, lims = fleet(4)
    glob = scoped("g", 10_000.0, 10_000.0, scope="global")
    stats = {"global_only": 0, "admitted": 0}

    async def traffic():
        for lim in lims:
            for c in range(12):  # 12 clients at 3x their limit of 2/s...
                await lim.acquire(glob + scoped(f"c{c}", 2.0, 2.0), 1)
            stats["global_only"] += 1  # ...and one request on the global key alone
            stats["admitted"] += (await lim.acquire(glob, 1)).allowed

    await run_for(clock, lims, 10.0, each_step=traffic)
    assert any(lim._sync.view.phi > 1.0 for lim in lims)
    assert stats["admitted"] >= 0.95 * stats["global_only"]


def budget(key="tenant", tokens=100.0):
    return scoped(key, rate=0.0, burst=tokens, scope="budget")


async def spend_all(lim, key="tenant", tokens=100.0, cost=10.0):
    return sum([(await lim.acquire(budget(key, tokens), cost)).allowed
                for _ in range(int(3 * tokens / cost))]) * cost


@pytest.mark.asyncio
async def test_a_budget_survives_a_restart():
    """A rate-0 limit lived in an instance's memory: a restarted instance granted it again
    (2.00x the budget; issue #23). It is a fact kept in storage, as in lease mode."""
    clock, store, (first,) = fleet(1)
    assert await spend_all(first) == 100.0
    await first.close()
    _, _, (second,) = fleet(1, store=store, clock=clock, seed=2)
    assert await spend_all(second) == 0.0


@pytest.mark.asyncio
async def test_a_tenant_on_one_of_four_instances_gets_its_whole_budget():
    """Each counted instance got 1/N of a budget: a tenant served by 1 of 4 got a quarter."""
    clock, _, lims = fleet(4)

    async def others():
        for lim in lims[1:]:
            await lim.acquire(scoped("busy", 100.0, 100.0), 1)

    await run_for(clock, lims, 5.0, each_step=others)
    assert await spend_all(lims[0]) == 100.0


@pytest.mark.asyncio
async def test_scaling_out_never_grants_a_budget_again():
    """Scaling out from 2 to 4 instances gave 1.50x the budget."""
    clock, store, lims = fleet(2)
    spent = [await spend_all(lim, cost=5.0) for lim in lims]
    await run_for(clock, lims, 3.0)
    _, _, more = fleet(2, store=store, clock=clock, seed=7)
    await run_for(clock, lims + more, 3.0)
    spent += [await spend_all(lim, cost=5.0) for lim in lims + more]
    assert sum(spent) == 100.0


@pytest.mark.asyncio
async def test_a_budget_and_a_share_are_all_or_nothing_and_refunds_reach_the_budget():
    _, _, (lim,) = fleet(1)
    both = scoped("c", 1.0, 1.0) + budget(tokens=50.0)
    assert (await lim.acquire(both, 1)).allowed
    assert not (await lim.acquire(both, 1)).allowed  # the share denies: no budget spent
    lim.adjust(both, -1)  # the whole reservation refunded
    assert await spend_all(lim, tokens=50.0, cost=10.0) == 50.0


@pytest.mark.asyncio
async def test_a_row_of_many_token_keys_is_still_published():
    """From 9,575 token-limit keys in one period the row raised ValueError, maintain()
    swallowed it, no row was written, nothing logged: the instance ran on a joiner's share."""
    clock, store, lims = fleet(2)
    await run_for(clock, lims, 2.0, each_step=lambda: lims[1].acquire(scoped("x"), 1))
    for n in range(10_000):
        await lims[0].acquire(scoped(f"c{n}", 200_000 / 60, 200_000.0), 190_000.123)
    done = lims[0]._sync.period(clock.now())
    await run_for(clock, lims, 2.0)
    row = await store.read(lims[0]._sync._placement.row)
    assert row is not None and row.fields["p"] >= done
    assert lims[0].counters["tally_publish_failures"] == 0


@pytest.mark.asyncio
async def test_a_failed_publish_is_counted_shown_on_health_and_retried(caplog):
    flaky = FlakyRateLimitStore(MemoryRateLimitStore())
    clock, _, (lim, other) = fleet(2, store=flaky)
    await run_for(clock, [lim, other], 3.0, each_step=lambda: lim.acquire(scoped(), 1))
    await clock.advance(P - clock.now() % P)  # a period starts: lim's row is due in it
    await lim.acquire(scoped(), 1)
    flaky.down = True
    for _ in range(40):  # until the write offset (at most 0.35 P): the row is refused once
        await run_for(clock, [lim], 0.01, step=0.01)
        if lim.counters["tally_publish_failures"]:
            break
    flaky.down = False
    state = lim.storage_state["tally"]["publish"]
    assert lim.counters["tally_publish_failures"] >= 1 and state["state"] == "failing"
    assert "StoreUnavailable" in state["last_error"]
    assert any("tally publish" in r.getMessage() for r in caplog.records)
    failed = state["period"]
    # Its row of the period before stands in (tally.aggregate: behind); the next period's
    # row supersedes it, and publishing shows ok again.
    row = await flaky.inner.read(lim._sync._placement.row)
    assert row.fields["p"] == failed - 1
    await run_for(clock, [lim], 1.5 * P)  # past the next period's write offset
    row = await flaky.inner.read(lim._sync._placement.row)
    assert row.fields["p"] == failed + 1 == lim._sync.period(clock.now()) - 1
    assert lim.storage_state["tally"]["publish"] == {"state": "ok"}


async def hopping(n, hop_s, seconds, cost=10_000.0):
    """One client asking 10 requests/s of `cost` tokens, moving to the next of `n` instances
    every `hop_s`; every instance has other traffic. Tokens admitted / (burst + rate * T)."""
    clock, _, lims = fleet(n, tally_period_s=3.0)
    tpm = [ScopedLimit("client_tpm", "hopper", Limit(400_000 / 60, 400_000), reserved=True)]
    admitted, t = 0.0, {"step": 0}

    async def traffic():
        for lim in lims:
            await lim.acquire(scoped("background", 1e6, 1e6), 1)
        now = t["step"] * 0.1
        t["step"] += 1
        if now >= 20.0:  # a warm fleet
            nonlocal admitted
            lim = lims[int((now - 20.0) // hop_s) % n]
            admitted += cost * (await lim.acquire(tpm, cost)).allowed

    await run_for(clock, lims, 20.0 + seconds, step=0.1, each_step=traffic)
    return admitted / (400_000 + 400_000 / 60 * seconds)


@pytest.mark.asyncio
@pytest.mark.parametrize(("n", "hop_s"), [(16, 6.0), (8, 9.0)])
async def test_a_client_hopping_instances_gets_about_its_allowance(n, hop_s):
    """A bucket forgotten and made again, full at a share counted later, while the instance
    left kept its tokens: 2.23x the allowance over 240 s across 16 instances (issue #23)."""
    ratio = await hopping(n, hop_s, 240.0)
    print(f"hopping n={n} every {hop_s} s: {ratio:.3f} of the allowance")
    assert ratio <= 1.05


@pytest.mark.asyncio
async def test_ten_instances_never_each_admit_a_huge_first_request():
    """A new bucket started full at max(cost, share): ten instances each admitted a
    190,000-token request, 1.9 M at once against 400,000 a minute. Cost above the share
    waits, with a Retry-After that says so."""
    clock, _, lims = fleet(10, tally_period_s=3.0)

    async def background():
        for lim in lims:
            await lim.acquire(scoped("background"), 1)

    await run_for(clock, lims, 10.0, each_step=background)
    tpm = [ScopedLimit("client_tpm", "big", Limit(400_000 / 60, 400_000), reserved=True)]
    decisions = [await lim.acquire(tpm, 190_000) for lim in lims]
    assert sum(d.allowed for d in decisions) * 190_000 <= 400_000 + 190_000
    assert all(d.retry_after_s > 0 for d in decisions if not d.allowed)


@pytest.mark.asyncio
@pytest.mark.parametrize("cost", [1.0, 3.0])
async def test_a_concurrent_burst_admits_what_fits_and_the_rest_wait_until_it_could(cost):
    """Issue #22 in tally mode: 40 requests at once against a burst holding k of them admit k;
    each refused one is told when its cost could fit (at most two periods: shares move)."""
    _, _, (lim,) = fleet(1)
    limit = scoped(rate=2.0, burst=10.0)
    decisions = await asyncio.gather(*(lim.acquire(limit, cost) for _ in range(40)))
    k = int(10.0 // cost)
    assert sum(d.allowed for d in decisions) == k
    left = 10.0 - k * cost
    for d in decisions:
        if not d.allowed:
            assert d.retry_after_s == pytest.approx(min((cost - left) / 2.0, 2 * P), abs=0.01)


@pytest.mark.asyncio
@pytest.mark.parametrize("skew", [-2.0, 2.0])
async def test_an_instance_with_a_skewed_clock_is_still_a_member(skew):
    """1.5 s behind (P = 3 s) an instance was counted but never a member, and a client pinned
    there got 9 % of its allowance; 1.5 s ahead it was left out of N (issue #23)."""
    clock = FakeClock(start=START)
    store = MemoryRateLimitStore()
    lims = [TallyLimiter(store, clock if k else SkewedClock(clock, skew),
                         config(tally_period_s=3.0), f"i{k}", background=False,
                         rng=random.Random(k)) for k in range(4)]
    pinned = {"asked": 0, "admitted": 0}

    async def traffic():
        for lim in lims[1:]:
            await lim.acquire(scoped("other", 1000.0, 1000.0), 1)
        decision = await lims[0].acquire(scoped("pinned", 10.0, 10.0), 1)
        if clock.now() - START >= 30.0:
            pinned["asked"] += 1
            pinned["admitted"] += decision.allowed

    await run_for(clock, lims, 60.0, step=0.05, each_step=traffic)
    leader = next(lim for lim in lims if lim._sync.leading)
    view = leader._sync.view
    assert view.instances == 4 and lims[0]._sync.me in view.members
    # 20 asked per second against 10/s: an exact limiter admits half.
    assert pinned["admitted"] >= 0.85 * 10.0 * 30.0


@pytest.mark.asyncio
async def test_the_aggregator_sums_rows_off_the_serving_event_loop(monkeypatch):
    """With 100,000 clients the aggregator decoded ~36 M characters per period on the event
    loop that serves requests (issue #23): it sums in a worker thread."""
    seen = []
    real = tally.aggregate

    def spy(*args, **kwargs):
        seen.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(tally, "aggregate", spy)
    clock, _, lims = fleet(2)
    await run_for(clock, lims, 3.0, each_step=lambda: lims[0].acquire(scoped(), 1))
    assert seen and not any(seen)


@pytest.mark.asyncio
async def test_partitions_follow_the_fleet_not_the_expected_instances(monkeypatch):
    """Partitions were sized from RATE_LIMIT_EXPECTED_INSTANCES (the Bicep's 4): one
    partition served a fleet of 1,000 (2,064 entities/s against a cap of 2,000 in the
    simulator). They follow the counted fleet; moving rows never loses an instance."""
    from function_app.ratelimit.tally import placement

    monkeypatch.setattr(placement, "GROUP_SIZE", 2)  # a group per 2 instances, not per 100
    clock, store, lims = fleet(6, expected_instances=1)

    async def traffic():
        for lim in lims:
            await lim.acquire(scoped("k", 1000.0, 1000.0), 1)

    await run_for(clock, lims, 12.0, each_step=traffic)
    partitions = {row.key.partition for part in range(4)
                  for row in await store.query(f"_tally.g{part}")}
    assert len(partitions) == 3
    leader = next(lim for lim in lims if lim._sync.leading)
    assert leader._sync.view.instances == 6 and len(leader._sync.view.members) == 6
    assert all(lim._sync.view.instances == 6 for lim in lims)
