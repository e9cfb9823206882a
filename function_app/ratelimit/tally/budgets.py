"""Budgets (rate-0 limits) at one instance in tally mode: from this instance's pots when they
pay (no storage call: tally/pots.py), else exactly through the lease limiter on the same rows
(lease/limiter.py), so the first request of a new tenant or a new instance is admitted at once
when the row has budget. Both draw from the budget's lease row, so the fleet never spends more
than the row held (docs/ratelimit-tally.md, "Budgets"). The exact path leases blocks while this
instance has no summary of a fleet (alone, or starting), and only each request's cost once it
has: a fleet's pots are granted from what the row holds, and blocks leased by every instance
of a starting fleet had emptied the rows into pools (pots of nothing at 100 instances).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import replace

from function_app.core.clock import Clock
from function_app.ratelimit.bucket import wait_for
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.keys import bucket_partition
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Decision, ScopedLimit
from function_app.ratelimit.store import RateLimitStore
from function_app.ratelimit.tally.sync import TallySync


def part_of(item: ScopedLimit) -> str:
    """The budget's name in rows and summaries: its lease partition (shard 0's row)."""
    return bucket_partition(item.scope, item.key)


class Budgets:
    """This instance's budget decisions: its pots first, the exact lease path otherwise."""

    def __init__(self, store: RateLimitStore, clock: Clock, config: LimiterConfig,
                 instance_id: str, rng: random.Random, background: bool,
                 sync: TallySync) -> None:
        self._clock, self._sync, self.pots = clock, sync, sync.pots

        def limiter(exact_below_rps: float) -> Limiter:
            return Limiter(store, clock, replace(config, exact_below_rps=exact_below_rps),
                           instance_id, rng=rng, background=background)
        self.blocks = limiter(-1.0)  # leases blocks (rate 0 is never below -1)
        self.costs = limiter(float("inf"))  # leases each request's cost, nothing ahead
        self.used: list[Limiter] = []

    @property
    def counters(self) -> dict[str, int]:
        merged = self.blocks.counters
        for name, value in self.costs.counters.items():
            merged[name] = merged.get(name, 0) + value
        return merged

    def _adopt(self) -> None:
        view, sync = self._sync.view, self._sync
        traffic = sync.ledger.traffic_of(view.period) if view is not None else 0.0
        self.pots.adopt(view, sync.me, self._clock.now(), traffic)

    async def decide(self, budgets: Sequence[ScopedLimit], cost: float
                     ) -> tuple[Decision, Callable[[], None]]:
        """The budgets' decision and how to undo its charge (a share refused the request
        after it). Pots pay when every budget's pot holds `cost`; a budget the summary shows
        empty refuses; otherwise the exact path decides all of them (without storage:
        fail-open at the counted fleet's share)."""
        now = self._clock.now()
        self._adopt()
        parts = [part_of(item) for item in budgets]
        for part, item in zip(parts, budgets, strict=True):
            if item.shards <= 1:  # a sharded budget has no pot: its rows are the exact path's
                self.pots.record(part, cost, item.limit.burst, now)
        if self.pots.pay(parts, cost):
            return self._paid(budgets, parts), lambda: self.settle(budgets, -cost)
        empty = next((item for part, item in zip(parts, budgets, strict=True)
                      if part in self.pots.empty and not item.limit.shadow), None)
        if empty is not None:
            return Decision(False, empty.scope, empty.limit, 0,
                            wait_for(0.0, empty.limit.burst, empty.limit),
                            wait_for(0.0, cost, empty.limit), reason="limited"), lambda: None
        view = self._sync.view
        exact = self.costs if view is not None and view.instances > 1 else self.blocks
        if exact not in self.used:
            self.used.append(exact)
        exact._start()
        fleet = self._sync.fleet()
        if exact._cfg.expected_instances != fleet:
            # Without storage a budget fails open at the counted fleet's share: it never
            # refills, and 1 / E let 100 instances with E = 4 spend it 25 times more.
            exact._cfg = replace(exact._cfg, expected_instances=fleet)
        decision = await exact._decide(budgets, cost)
        return decision, lambda: exact._settle(budgets, -cost)

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
        goes back there), else into the pool of the exact path that knows the key."""
        for item in budgets:
            if self.pots.settle(part_of(item), delta):
                continue
            key = (item.scope, item.key)
            exact = next((lim for lim in reversed(self.used) if key in lim._keys), None)
            if exact is not None:
                exact._settle([item], delta)

    async def maintain(self) -> None:
        """Take or drop pots with the view, and keep the exact paths' leases."""
        self._adopt()
        for exact in self.used:
            await exact.maintain()

    async def close(self) -> None:
        for exact in self.used:
            await exact.close()  # gives unused leased budget back to its row
