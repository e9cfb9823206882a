"""Budgets (rate-0 limits) at one instance in tally mode: from this instance's pots when they
pay (no storage call: tally/pots.py), else exactly through the lease limiter on the same rows
(lease/limiter.py), so the first request of a new tenant or a new instance is admitted at once
when the row has budget. Both draw from the budget's lease row, so the fleet never spends more
than the row held (docs/ratelimit-tally.md, "Budgets"). The exact path leases what this
instance's own rate spends within a few seconds, when a request needs it, and never tops its
pool up ahead (`OnDemand`): pots are granted from what the row holds, and background top-ups
by every instance of a fleet had moved the rows into idle pools (pots of nothing at 100
instances); leasing each request's cost instead cost a write per request until pots came
(ServerBusy on every budget's partition at 100 instances).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import replace

from function_app.core.clock import Clock
from function_app.ratelimit.bucket import wait_for
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.keys import bucket_partition
from function_app.ratelimit.lease.keystate import KeyState
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Decision, ScopedLimit
from function_app.ratelimit.store import RateLimitStore
from function_app.ratelimit.tally.sync import TallySync

log = logging.getLogger(__name__)


def part_of(item: ScopedLimit) -> str:
    """The budget's name in rows and summaries: its lease partition (shard 0's row)."""
    return bucket_partition(item.scope, item.key)


class OnDemand(Limiter):
    """The lease limiter without background top-ups: it leases only for a request waiting,
    at least `least` of the budget (this instance's part of the fleet: see Budgets)."""

    least = 0.0
    # Its leases are sized by `least` and the request waiting, never by a previous lease.
    RESUME_AT_LEASE_GOAL = False

    def _maybe_refill(self, ks: KeyState, now: float) -> None:
        return

    def _lease_target(self, ks: KeyState, now: float) -> float:
        return max(super()._lease_target(ks, now), self.least * ks.limit.burst)


class Budgets:
    """This instance's budget decisions: its pots first, the exact lease path otherwise."""

    def __init__(self, store: RateLimitStore, clock: Clock, config: LimiterConfig,
                 instance_id: str, rng: random.Random, background: bool,
                 sync: TallySync) -> None:
        self._clock, self._sync, self.pots = clock, sync, sync.pots
        self._expected = max(1, config.expected_instances)
        # Leases sized by demand (rate 0 is never below -1): one per request was a write each.
        # A lease holds about what this instance spends until pots come (two periods): 3 s
        # of it made a fleet of 1,000 starting at once lease every budget row twice as often.
        ttl = max(config.lease_ttl_s, 3 * config.tally_period_s)
        self.exact = OnDemand(store, clock, replace(config, exact_below_rps=-1.0,
                                                    lease_ttl_s=ttl),
                              instance_id, rng=rng, background=background)
        self.used = False

    def _adopt(self) -> None:
        view, sync = self._sync.view, self._sync
        traffic = sync.ledger.traffic_of(view.period) if view is not None else 0.0
        self.pots.adopt(view, sync.me, self._clock.now(), traffic)

    async def decide(self, budgets: Sequence[ScopedLimit], cost: float
                     ) -> tuple[Decision, Callable[[], None]]:
        """The budgets' decision and how to undo its charge (a share refused the request
        after it). Pots pay when every budget's pot holds `cost`; a budget whose row the
        summary showed with less than `cost` left refuses (unless the exact path's pool
        pays); otherwise the exact path decides all of them (without storage:
        fail-open at the counted fleet's share)."""
        now = self._clock.now()
        self._adopt()
        parts = [part_of(item) for item in budgets]
        for part, item in zip(parts, budgets, strict=True):
            if item.shards <= 1:  # a sharded budget has no pot: its rows are the exact path's
                self.pots.record(part, cost, item.limit.burst, now)
        if self.pots.pay(parts, cost):
            return self._paid(budgets, parts), lambda: self.settle(budgets, -cost)
        empty = self.refusal(budgets, cost, asked=False)
        if empty is not None:
            return empty, lambda: None
        self.exact._counters.incr("budget_exact")
        exact, self.used = self.exact, True
        exact._start()
        fleet = self._sync.fleet()
        exact.least = 1.0 / max(fleet + 1, self._expected)
        if exact._cfg.expected_instances != fleet:
            # Without storage a budget fails open at the counted fleet's share: it never
            # refills, and 1 / E let 100 instances with E = 4 spend it 25 times more.
            exact._cfg = replace(exact._cfg, expected_instances=fleet)
        decision = await exact._decide(budgets, cost)
        return decision, lambda: exact._settle(budgets, -cost)

    def refusal(self, budgets: Sequence[ScopedLimit], cost: float,
                asked: bool = True) -> Decision | None:
        """The refusal of a budget the last summary showed with less than `cost` left, or
        likely drained below it by the grants since (Pots.drained), when neither its pot nor
        the exact path's pool pays (no storage call), else None. Asked
        before the shares too, so a request refused anyway never syncs them (in the budgets
        scenario it changed little: 0.0922 to 0.0920 operations per admitted request). A
        refused cost is demand (`asked`: not recorded yet) unless the row is known empty
        (Pots.record): a row only likely drained may hold budget for the next grant."""
        now = self._clock.now()
        self._adopt()
        for item in budgets:
            part = part_of(item)
            pot = self.pots.pots.get(part)
            if (self.pots.drained(part, cost, now) and not item.limit.shadow
                    and (pot is None or pot.tokens < cost) and not self._pooled(item, cost, now)):
                if asked and item.shards <= 1:
                    self.pots.record(part, cost, item.limit.burst, now)
                self.exact._counters.incr("budget_refused_empty")
                return Decision(False, item.scope, item.limit, 0,
                                wait_for(0.0, item.limit.burst, item.limit),
                                wait_for(0.0, cost, item.limit), reason="limited")
        return None

    def _pooled(self, item: ScopedLimit, cost: float, now: float) -> bool:
        """The exact path's pool pays `cost` for this budget without a storage call."""
        ks = self.exact._keys.get((item.scope, item.key))
        return ks is not None and ks.pool(now) >= cost

    def _paid(self, budgets: Sequence[ScopedLimit], parts: list[str]) -> Decision:
        """Admitted from the pots; the budget with the least estimated left speaks."""
        left = [self.pots.remaining(part, item.limit.burst)
                for part, item in zip(parts, budgets, strict=True)]
        at = min(range(len(budgets)), key=left.__getitem__)
        item = budgets[at]
        return Decision(True, item.scope, item.limit, math.floor(left[at]),
                        wait_for(left[at], item.limit.burst, item.limit))

    def settle(self, budgets: Sequence[ScopedLimit], delta: float) -> None:
        """A pot-paid or exact-paid cost settled by `delta`, once: into the budget's pot
        while it has one (either way the tokens came from its row, and a pot's remainder
        goes back there), else into the exact path's pool."""
        for item in budgets:
            if self.pots.settle(part_of(item), delta):
                continue
            self.exact._settle([item], delta)

    def report(self, counters: dict[str, int]) -> dict[str, int]:
        """For /healthz: pots held now, and the budget counters (of `counters`) since start."""
        return {"pots_held": len(self.pots.pots),
                **{name.removeprefix("budget_"): counters[name] for name in counters
                   if name.startswith("budget_")}}

    async def maintain(self) -> None:
        """Take or drop pots with the view, report idle leased pools as unused, and keep the
        exact path's leases."""
        self._adopt()
        if self.used:
            self._report_idle(self._clock.now())
            await self.exact.maintain()

    def _report_idle(self, now: float) -> None:
        """A pool the exact path leased and no longer uses goes back to its row through the
        next instance row, as a pot's remainder does (credited once by the aggregator), not
        by a write of its own: 1,000 instances giving 20 budgets' pools back at once made a
        read and a write each, and their conflicts lost some of the tokens."""
        idle_s = self.exact._cfg.idle_return_s
        for ks in self.exact._keys.values():
            if (ks.tokens > 1e-9 and ks.fetch is None and ks.waiting <= 0 and ks.shards == 1
                    and (now - ks.last_used >= idle_s or now >= ks.expires_at)):
                self.pots.give(ks.partition, ks.tokens, ks.limit.burst)
                ks.tokens, ks.expires_at = 0.0, 0.0

    async def close(self) -> None:
        if self.used:
            await self.exact.close()  # gives unused leased budget back to its row
