"""Budgets (rate-0 limits) in tally mode through pots: the aggregator grants from each budget's
lease row for the fleet, instances spend their pots without storage calls, and the fleet never
spends more than the row held (docs/ratelimit-tally.md, "Budgets"). Virtual clock, in-memory
store."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.core.store_errors import StoreConflict, StoreUnavailable
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.lease import lease
from function_app.ratelimit.lease.keys import bucket_partition, shard_row
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.store import RowKey
from function_app.ratelimit.tally import potgrants, tally
from function_app.ratelimit.tally import pots as pots_module
from function_app.ratelimit.tally import rows as tally_rows
from function_app.ratelimit.tally.aggregator import SUMMARY
from function_app.ratelimit.tally.limiter import TallyLimiter
from function_app.ratelimit.tally.pots import Pot, Pots
from tests.support.clock import FakeClock
from tests.unit.test_tally_limiter import START, config, fleet, run_for, scoped

PART = bucket_partition("tenant", "t")
ROW = RowKey(PART, shard_row(0))


def budget(tokens: float) -> list[ScopedLimit]:
    return [ScopedLimit("tenant", "t", Limit(0.0, tokens))]


async def row_tokens(store) -> float:
    found = await store.read(ROW)
    return lease.row_from_fields(found.fields).tokens if found is not None else float("nan")


def total(lims, name: str) -> int:
    return sum(lim.counters[name] for lim in lims)


class Spender:
    """Requests on a budget (and a shared key) through a fleet; counts what was spent."""

    def __init__(self, tokens: float, refund: float = 0.0, seed: int = 3) -> None:
        self.scoped = scoped("g", 1e6, 1e6, scope="global") + budget(tokens)
        self.refund, self.spent, self.rng = refund, 0.0, random.Random(seed)

    async def one(self, lim, cost: float = 2.0) -> bool:
        decision = await lim.acquire(self.scoped, cost)
        if decision.allowed:
            self.spent += cost
            if self.refund:
                lim.adjust(self.scoped, -self.refund)
                self.spent -= self.refund
        return decision.allowed

    def step(self, lims, per_step: int = 4):
        async def traffic():
            for _ in range(per_step):
                await self.one(self.rng.choice(lims))
        return traffic


@pytest.mark.asyncio
async def test_a_pot_is_spent_with_zero_storage_calls():
    """Every instance leased its budget from the row (read + write): with 20 budgets over
    1,000 instances, two storage operations per admitted request."""
    clock, _store, lims = fleet(4)
    spender = Spender(1e6)
    await run_for(clock, lims, 6.0, each_step=spender.step(lims))
    holder = next(lim for lim in lims if lim._budgets.pots.pots.get(PART))
    pot = holder._budgets.pots.pots[PART].tokens
    assert pot >= 10, pot
    calls, paid = holder.counters["storage_round_trips"], holder.counters["budget_pot_paid"]
    for _ in range(int(pot // 2) - 1):  # budget only: no share to sync either
        assert (await holder.acquire(budget(1e6), 2.0)).allowed
    assert holder.counters["storage_round_trips"] == calls
    assert holder.counters["budget_pot_paid"] == paid + int(pot // 2) - 1
    assert total(lims, "budget_pots_granted") > 0


@pytest.mark.asyncio
async def test_the_fleet_never_spends_more_than_the_budget_through_restarts_and_takeovers():
    """Instances restart (closed or crashed, their pots lost), the aggregator crashes mid-
    period (another takes over and aggregates the same period again), refunds come back: the
    fleet spends at most the budget, most of it from pots, and nearly all of it."""
    clock, store, lims = fleet(5, seed=4)
    spender = Spender(3000.0, refund=0.5)
    everyone = list(lims)
    for round_ in range(6):
        await run_for(clock, lims, 2.3, each_step=spender.step(lims))
        leader = next((lim for lim in lims if lim._sync.leading), None)
        victim = leader if round_ % 2 == 0 and leader is not None else lims[round_ % len(lims)]
        lims.remove(victim)
        if round_ % 3 == 1:
            await victim.close()  # its unused lease goes back; its pots are lost
        _, _, (fresh,) = fleet(1, store=store, clock=clock, seed=50 + round_)
        lims.append(fresh)
        everyone.append(fresh)
    await run_for(clock, lims, 20.0, each_step=spender.step(lims))
    assert spender.spent <= 3000.0 + 1e-6, spender.spent
    # Crashed instances take their pots and leases with them: an undershoot. Light instances
    # write every other row, so a crash also takes the remainders waiting for its next row:
    # four crashes in 14 s on five instances leave 0.49-0.56 of it spent (seeds 4-7; 0.52
    # on seed 4 when every instance wrote every period).
    assert spender.spent >= 0.45 * 3000.0, spender.spent
    assert total(everyone, "budget_pot_paid") > total(everyone, "leases")
    assert total(everyone, "tally_takeovers") >= 2


@pytest.mark.asyncio
async def test_two_aggregators_of_one_period_never_grant_or_credit_twice():
    """After a takeover two aggregators may sum the same period: the second finds the period
    on the row, even after an instance leased from it in between, and applies nothing."""
    store, counters = MemoryRateLimitStore(), Counters()
    rows = [tally.InstanceRow("a", 7, 0.0, {}, 10.0, {PART: (30.0, 5.0, 100.0)}, True),
            tally.InstanceRow("b", 7, 0.0, {}, 10.0, {PART: (10.0, 0.0, 100.0)}, True)]
    found = await store.write(ROW, lease.row_to_fields(lease.Row(50.0, 0.0, 0.0, 100.0)), None)
    assert found
    view = tally.View(7, 2, frozenset("ab"), {}, tally.PHI, 20.0)
    grants, excluded = await potgrants.grant(store, rows, view, 1.0, counters)
    assert grants[PART] == (55.0, 40.0, 0.0, 2) and not excluded  # 50 + 5 credited, all taken
    stored = await store.read(ROW)
    row = lease.row_from_fields(stored.fields)
    returned = lease.returned(row, Limit(0.0, 100.0), 3.0, "x", 2.0)  # lease mode writes
    await store.write(ROW, lease.row_to_fields(returned), stored.etag)
    again, _ = await potgrants.grant(store, rows, view, 3.0, counters)
    assert again == {}
    assert await row_tokens(store) == 3.0
    later, _ = await potgrants.grant(store, rows, replace(view, period=8), 4.0, counters)
    assert later == {}  # rows of period 7 are not period 8's


@pytest.mark.asyncio
async def test_a_grant_whose_summary_is_lost_is_tokens_lost_never_spent_twice():
    """The summary write fails after the grant: no instance takes that pot, and the row does
    not have it back (an undershoot)."""

    class SummaryLost(MemoryRateLimitStore):
        lose = False

        async def write(self, key, fields, etag):
            if key == SUMMARY and self.lose and "b0" in fields:
                self.lose = False
                raise StoreConflict("lost")
            return await super().write(key, fields, etag)

    store = SummaryLost()
    clock, _, lims = fleet(3, store=store, seed=9)
    spender = Spender(400.0)
    await run_for(clock, lims, 3.0, each_step=spender.step(lims))
    store.lose = True
    await run_for(clock, lims, 15.0, each_step=spender.step(lims))
    assert not store.lose  # a summary with grants was lost
    assert spender.spent <= 400.0
    assert await row_tokens(store) < 2.0


@pytest.mark.asyncio
async def test_lost_instance_rows_lose_their_unused_pots_never_report_them_twice():
    """A row refused by storage takes its unused remainders with it (an undershoot); the next
    row does not carry them again, and a retried row carries the same figures."""
    pots = Pots(1.0, Counters())
    pots.record(PART, 4.0, 100.0, 10.2)
    first = pots.close(10)
    pots._unused[PART] = 7.0  # a pot dropped with 7 left
    pots.record(PART, 2.0, 100.0, 11.5)
    row = pots.close(11)
    assert row == {PART: [2.0, 7.0, 100.0]} and first[PART][1] == 0.0
    assert pots.close(11) == row  # the retry of the same row
    assert pots.close(12)[PART][1] == 0.0  # reported once, whether that row landed or not


@pytest.mark.asyncio
async def test_the_first_request_of_a_new_instance_is_admitted_through_the_exact_path():
    clock, store, lims = fleet(3, seed=5)
    spender = Spender(1e5)
    await run_for(clock, lims, 5.0, each_step=spender.step(lims))
    assert total(lims, "budget_pots") > 0
    _, _, (new,) = fleet(1, store=store, clock=clock, seed=77)
    assert await spender.one(new)
    assert new.counters["leases"] == 1 and new.counters["budget_pot_paid"] == 0


@pytest.mark.asyncio
async def test_an_exhausted_budget_stays_refused_everywhere_without_storage_calls():
    clock, _store, lims = fleet(4, seed=6)
    spender = Spender(300.0)
    await run_for(clock, lims, 20.0, each_step=spender.step(lims))
    assert 0.8 * 300.0 <= spender.spent <= 300.0
    spent = spender.spent
    await run_for(clock, lims, 5.0, each_step=spender.step(lims))  # every instance learns
    calls = total(lims, "storage_round_trips")
    denied = [not await spender.one(lim) for lim in lims for _ in range(20)]
    assert all(denied) and spender.spent == spent
    assert total(lims, "storage_round_trips") == calls


@pytest.mark.asyncio
async def test_refunds_of_pot_paid_costs_go_back_into_the_pot():
    clock, _store, lims = fleet(2, seed=8)
    spender = Spender(1e5)
    await run_for(clock, lims, 5.0, each_step=spender.step(lims))
    holder = next(lim for lim in lims if lim._budgets.pots.pots.get(PART))
    before = holder._budgets.pots.pots[PART].tokens
    assert (await holder.acquire(budget(1e5), 5.0)).allowed
    holder.adjust(budget(1e5), -4.0)
    assert holder._budgets.pots.pots[PART].tokens == pytest.approx(before - 1.0)


def test_the_pots_of_one_grant_sum_to_at_most_the_grant():
    """Each member takes G * e_i / D (own demand trusted as far as its counts are many, else
    its part of the traffic): over every member whose row was summed, at most G."""
    rng = random.Random(2)
    members = {f"m{k}": (round(rng.uniform(0, 9), 4), float(rng.randrange(1, 80)))
               for k in range(40)}
    d_total = sum(d for d, _ in members.values())
    holders = sum(1 for d, _ in members.values() if d > 0)
    view = tally.View(5, 45, frozenset(members), {}, tally.PHI,
                      sum(t for _, t in members.values()),
                      pots={PART: (123.4567, d_total, 10.0, holders)}, excluded=frozenset())
    taken = 0.0
    for me, (d, traffic) in members.items():
        pots = Pots(1.0, Counters())
        pots._published[5] = {PART: d}
        assert pots.reading(5, True)
        pots.adopt(view, me, 6.5, traffic)
        taken += pots.pots[PART].tokens if PART in pots.pots else 0.0
    assert 0.9 * 123.4567 < taken <= 123.4567


def test_budgets_round_trip_through_rows_and_lease_mode_keeps_the_period():
    fields, dropped = tally_rows.instance_fields(3, 1.0, {"k": 2.0}, {"k": 5.0}, 4.0,
                                                 {PART: [2.5, 1.25, 100.0]})
    parsed = tally_rows.parse_instance("m", fields)
    assert dropped == 0 and parsed.budgets == {PART: (2.5, 1.25, 100.0)}
    view = tally.View(3, 2, frozenset({"m"}), {}, tally.PHI, 4.0,
                      pots={PART: (8.0, 2.5, 90.0, 1)}, excluded=frozenset({"z"}))
    back, _, _ = tally_rows.parse_summary(tally_rows.summary_fields(view, "m", 1.0))
    assert back.pots == view.pots and back.excluded == view.excluded
    row = lease.Row(5.0, 1.0, 0.0, 100.0, {}, 7)
    taken = lease.take(row, Limit(0.0, 100.0), held=0.0, target=2.0, cost=2.0,
                       instance="i", now=2.0, lease_s=0.25, ttl_s=4.0)
    assert lease.row_from_fields(lease.row_to_fields(taken.row)).pot == 7
    assert "pot" not in lease.row_to_fields(lease.fresh_row(Limit(1.0, 2.0), 0.0))


@pytest.mark.asyncio
async def test_without_storage_pots_already_held_stay_spendable():
    from tests.support.stores import FlakyRateLimitStore

    clock = FakeClock(start=START)
    flaky = FlakyRateLimitStore(MemoryRateLimitStore())
    lims = [TallyLimiter(flaky, clock, config(failure_mode="closed"), f"i{k}",
                         background=False, rng=random.Random(k)) for k in range(3)]
    spender = Spender(1e5)
    await run_for(clock, lims, 5.0, each_step=spender.step(lims))
    holder = next(lim for lim in lims if lim._budgets.pots.pots.get(PART))
    flaky.down = True
    flaky.fail_with = lambda: StoreUnavailable("down")
    decision = await holder.acquire(budget(1e5), 1.0)
    assert decision.allowed and not decision.degraded


def test_an_instance_that_will_not_read_the_summary_is_granted_nothing():
    """An instance deciding few requests reads every other summary: a pot granted to it in a
    summary it skips was tokens lost (a fifth of a budget in a few seconds on 5 instances).
    Its demand is left out of D, it is listed as left out, its unused remainder counts."""
    rows = [tally.InstanceRow("a", 4, 0.0, {}, 1.0, {PART: (6.0, 2.0, 50.0)}, False),
            tally.InstanceRow("b", 4, 0.0, {}, 1.0, {PART: (4.0, 1.0, 50.0)}, True)]
    sums, excluded = potgrants.summed(rows, 4, frozenset("ab"))
    assert sums[PART] == [4.0, 3.0, 50.0, 1] and excluded == frozenset("a")


@pytest.mark.asyncio
async def test_idle_leased_pools_go_back_through_the_instance_rows_not_writes_of_their_own():
    clock, store, lims = fleet(3, seed=11)
    spender = Spender(5000.0)
    await run_for(clock, lims, 8.0, each_step=spender.step(lims))
    assert total(lims, "leases") > 0 and total(lims, "budget_pot_paid") > 0
    assert total(lims, "returns") == 0
    assert total(lims, "budget_unused_credited") > 0
    held = sum(pot.tokens for lim in lims for pot in lim._budgets.pots.pots.values())
    assert spender.spent + held + await row_tokens(store) <= 5000.0 + 1e-6


@pytest.mark.asyncio
async def test_pots_are_counted_on_health():
    clock, _, lims = fleet(2, seed=12)
    spender = Spender(1e5)
    await run_for(clock, lims, 5.0, each_step=spender.step(lims))
    reports = [lim.storage_state["tally"]["budgets"] for lim in lims]
    assert sum(r["pot_paid"] for r in reports) > 0 and sum(r["pots_granted"] for r in reports) > 0
    assert all("pots_held" in r and "unused_credited" in r for r in reports)


@pytest.mark.asyncio
async def test_a_grant_takes_off_the_row_only_what_the_pots_will_hold():
    """e_i includes the traffic part w_i * D, and w_i sums to one over every counted instance,
    those that take no pot included (not reading, or counted by an older row): taking G whole
    off the row lost their part of every grant (22,000 of 150,000 tokens at 1,000 instances
    in the budgets scenario). The row gives what the pots hold, no more and no less."""
    store, counters = MemoryRateLimitStore(), Counters()
    await store.write(ROW, lease.row_to_fields(lease.Row(100.0, 0.0, 0.0, 100.0)), None)
    rows = [tally.InstanceRow("a", 7, 0.0, {}, 10.0, {PART: (6.0, 0.0, 100.0)}, True),
            tally.InstanceRow("b", 7, 0.0, {}, 20.0, {PART: (4.0, 0.0, 100.0)}, False),
            tally.InstanceRow("c", 6, 0.0, {}, 10.0, {PART: (3.0, 0.0, 100.0)}, True)]
    view = tally.View(7, 3, frozenset("abc"), {}, tally.PHI, 40.0, behind=frozenset("c"))
    grants, excluded = await potgrants.grant(store, rows, view, 1.0, counters)
    assert excluded == frozenset("bc")
    view = replace(view, pots=grants, excluded=excluded)
    held = 0.0
    for row in rows:
        pots = Pots(1.0, Counters())
        pots._published[7] = {PART: row.budgets[PART][0]}
        pots.reading(7, row.reads)
        pots.adopt(view, row.member, 7.5, row.traffic)
        held += pots.pots[PART].tokens if PART in pots.pots else 0.0
    taken = 100.0 - await row_tokens(store)
    # HEADROOM * (6 + 3): a's demand, and c's of the period before (c reads every other
    # summary, so the pots of those reading this one last until their next); b does not read.
    assert taken == pytest.approx(18.0, abs=1e-3)
    assert held <= taken and held == pytest.approx(taken, abs=1e-3)


def test_a_newer_view_keeps_what_the_instance_asks_of_its_pot_and_reports_the_rest():
    """Dropping every pot on each newer view sent tokens the instance was about to spend to
    its row and back (two periods), refusing its requests meanwhile: 0.68 of each budget
    spent in the budgets scenario. It keeps what it asked of the budget in the view's period
    (merged into the new pot), reports only the rest, and drops a pot it did not ask of."""
    pots = Pots(1.0, Counters())
    other = bucket_partition("tenant", "u")
    pots.pots = {PART: Pot(10.0, 4, 0.5, 0.0), other: Pot(3.0, 4, 0.5, 0.0)}
    pots._published[5] = {PART: 4.0}
    pots.reading(5, True)
    view = tally.View(5, 2, frozenset({"me", "x"}), {}, tally.PHI, 10.0,
                      pots={PART: (8.0, 8.0, 0.0, 2)}, excluded=frozenset())
    pots.adopt(view, "me", 5.6, 5.0)
    granted = 8.0 * pots_module.pot_share(view, 5.0, 4.0, 8.0, 2) * (1 - 1e-9)
    assert pots.pots[PART].tokens == pytest.approx(4.0 + granted)
    assert other not in pots.pots
    assert pots._unused == {PART: pytest.approx(6.0), other: pytest.approx(3.0)}


@pytest.mark.asyncio
async def test_a_row_the_grants_since_have_likely_drained_is_refused_without_a_read():
    """A light instance holds a summary two or three periods old; the row it showed with
    some budget left has been granted from since (about HEADROOM * D each). The exact path
    read it and found it short in nearly all of about 500 tries in the budgets scenario's
    window: a refusal without storage now, until a newer summary shows the row again."""
    clock, _store, (lim,) = fleet(1, seed=9)
    pots = lim._budgets.pots
    now = clock.now()
    seen = pots.period(now) - 3
    pots.known[PART] = (10.0, seen)
    pots._grants[PART] = pots_module.HEADROOM * 4.0  # the summary listed D = 4
    assert not pots.short(PART, 1.0)
    assert pots.drained(PART, 1.0, now)
    assert not pots.drained(PART, 1.0, pots.period_s * (seen + 1))  # no grant since yet
    decision = lim._budgets.refusal(budget(1e5), 1.0)  # synchronous: no storage call
    assert decision is not None and not decision.allowed
    # Still demand: the row may hold budget for the next grant (a refused cost not counted
    # shrank the grants to the instances whose views were old: 56,800 -> 51,000 admitted).
    assert pots._raw[pots.period(now)][PART] == 1.0
    pots.known[PART] = (0.5, seen)  # known empty: no grant can come of it, no demand
    assert lim._budgets.refusal(budget(1e5), 1.0) is not None
    assert pots._raw[pots.period(now)][PART] == 1.0
