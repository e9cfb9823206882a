"""One simulated fleet for load/simulate.py: N production limiters on a virtual clock against
the modelled Table Storage, fed one stream of arrivals that an exact limiter is fed too.

A run is warm-up then the counted window; a tenth of the instances leave at T/3 and as many
join at 2T/3. Options (load/simulate.py --help): client limits, token costs with refunds,
budgets (rate-0 limits), clients pinned to an instance and hopping, a tenth of the instances
idle from the middle of the warm-up until 2T/3 (then rejoining), skewed clocks, ServerBusy,
and an attacker flooding fresh client ids at their burst (inflating phi).
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter

from sim_measure import measure
from sim_parts import (
    HOPPERS,
    Exact,
    instrument,
    pick,
    poisson,
    request_cost,
    skew_of,
    zipf_cumulative,
    zipf_weights,
)
from sim_table import SimTableStore

from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.tally.limiter import TallyLimiter
from tests.support.clock import FakeClock, SkewedClock

STEP_S = 0.002
SHARD_PER_INSTANCES = 32  # lease mode: a global key shard per this many instances


class Run:
    """One N: `await Run(n, args).go()` returns the row load/sim_report.py prints."""

    def __init__(self, n: int, args) -> None:
        self.n, self.args = n, args
        self.rng = random.Random(args.seed * 7919 + n)
        self.clock = FakeClock(start=1_700_000_000.0)
        self.store = SimTableStore(self.clock, random.Random(args.seed + n), busy=args.busy)
        self.config = LimiterConfig(storage_timeout_s=1e9, expected_instances=args.expected or n,
                                    lease_ttl_s=args.lease_ttl, sync=args.sync,
                                    tally_period_s=args.period)
        self.tallying = args.sync == "tally"
        self.shards = 1 if self.tallying else args.shards or -(-n // SHARD_PER_INSTANCES)
        self.spawned = itertools.count()
        self.limiters = [self.new_instance() for _ in range(n)]
        self.everyone = list(self.limiters)
        self.shares = zipf_weights(n, 0.8, self.rng)  # each instance's part of the arrivals
        self.churn = max(1, n // 10) if n > 1 else 0
        self.idle = set(self.limiters[self.churn:2 * self.churn]) if args.idle else set()
        self.idle_count = len(self.idle)
        self.weights: list[float] = []
        self.client_cum = zipf_cumulative(args.clients, 1.0, self.rng) if args.clients else []
        self.unit = args.tokens or 1.0  # the costs' upper end: u in the bound
        self.global_limit = Limit(args.global_rps * self.unit, args.global_rps * self.unit)
        self.client_limit = Limit(args.client_rps * self.unit, args.client_rps * 2 * self.unit)
        # Burst 4/3 of a period's rate: one request asking it is utilisation 4/3.
        self.attacker_limit = Limit(args.client_rps / 2, args.client_rps * 2)
        self.budget_limit = Limit(0.0, self.budget_size())
        self.counts: Counter[str] = Counter()
        self.per_client: Counter[str] = Counter()
        self.exact_per_client: Counter[str] = Counter()
        self.per_budget: Counter[str] = Counter()
        self.exact = Exact()
        self.pending: set[asyncio.Task] = set()
        self.reasons: Counter[str] = Counter()
        self.attacks = itertools.count()
        self.kinds_before: Counter[str] = Counter()  # operations by kind when counting began
        instrument()

    def budget_size(self) -> float:
        """Each of --budgets tenants' budget: spent about halfway through the counted window
        (at the global limit's rate, from the start of the warm-up)."""
        if not self.args.budgets:
            return 0.0
        spent_by = self.args.warmup + self.args.seconds / 2
        return self.args.global_rps * self.unit * spent_by / self.args.budgets

    def new_instance(self) -> Limiter | TallyLimiter:
        k = next(self.spawned)
        rng_k = random.Random(self.args.seed * 1_000_003 + k)
        if self.tallying:
            skew = skew_of(k, self.args.skew)
            own = SkewedClock(self.clock, skew) if skew else self.clock
            return TallyLimiter(self.store, own, self.config, f"i{k}", background=False,
                                rng=rng_k)
        return Limiter(self.store, self.clock, self.config, f"i{k}", background=False,
                       jitter_on_clock=True, rng=rng_k)

    def reweigh(self) -> None:
        """The load balancer's weights: idle instances get nothing."""
        self.weights = list(itertools.accumulate(
            0.0 if lim in self.idle else share
            for lim, share in zip(self.limiters, self.shares, strict=True)))

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def one(self, limiter, scoped: list[ScopedLimit], measured: bool, cost: float = 1.0,
                  refund: float = 0.0, honest: bool = True) -> None:
        """One request through `limiter`, counted when `measured` (attackers: only the cost
        they took from the global key, which the bound covers)."""
        decision = await limiter.acquire(scoped, cost)
        if decision.allowed and refund:
            limiter.adjust(scoped, -refund)
        if decision.allowed and scoped[-1].scope == "tenant":  # budgets: from the start
            self.per_budget[scoped[-1].key] += cost - refund
        if not measured:
            return
        if decision.allowed:
            self.counts["global_admitted"] += cost - refund
            if honest:
                self.counts["admitted"] += 1
                if len(scoped) > 1 and scoped[1].scope == "client":
                    self.per_client[scoped[1].key] += cost - refund
        elif honest:
            self.counts["denied"] += 1
            self.reasons[decision.reason] += 1

    def events(self, step: int, steps: int, warm: int) -> None:
        """Churn and idling at their steps: a tenth leave at T/3 (their traffic spread over
        the others), as many join at 2T/3 as busy as a random other, and the idle tenth
        (from the middle of the warm-up) gets traffic again at 2T/3."""
        if step == -warm // 2 and self.idle:
            self.reweigh()
        if self.churn and step == steps // 3:
            for lim in self.limiters[:self.churn]:
                self.spawn(lim.close())
            self.limiters, self.shares = self.limiters[self.churn:], self.shares[self.churn:]
            self.reweigh()
        if self.churn and step == 2 * steps // 3:
            joiners = [self.new_instance() for _ in range(self.churn)]
            self.limiters += joiners
            self.everyone += joiners
            self.shares += [self.rng.choice(self.shares) for _ in joiners]
            self.idle.clear()
            self.reweigh()

    def arrivals(self, began: float, now: float, measured: bool) -> None:
        """One step's honest requests: the global key, a client's key, a tenant's budget."""
        args, rng = self.args, self.rng
        for _ in range(poisson(args.rps * STEP_S, rng)):
            scoped = [ScopedLimit("global", "global", self.global_limit, self.shards)]
            where = pick(self.weights, rng)
            if self.client_cum:
                index = pick(self.client_cum, rng)
                scoped.append(ScopedLimit("client", f"c{index}", self.client_limit))
                if args.hop and index % HOPPERS == 0:  # pinned, moving every --hop s
                    where = (index + int((now - began) / args.hop)) % len(self.limiters)
            if args.budgets:
                scoped.append(ScopedLimit("tenant", f"t{rng.randrange(args.budgets)}",
                                          self.budget_limit))
            cost, refund = request_cost(args, rng)
            if self.exact.admits(scoped, now, cost) and self.exact.refund(scoped, refund) \
                    and measured:
                self.counts["exact_admitted"] += 1
                if self.client_cum:
                    self.exact_per_client[scoped[1].key] += cost - refund
            self.spawn(self.one(self.limiters[where], scoped, measured, cost, refund))

    def attackers(self) -> None:
        """Fresh client ids, each asking its whole burst once: utilisation 4/3 on more keys
        per period than the summary lists, so the list is cut and phi rises above one (the
        issue's flood of ids drove it to 3,125 and starved every unlisted key, the global
        key included). They carry only their own key: refused there, the cost counts as
        demand on it, which is what inflates phi; the shared keys are checked as usual."""
        for _ in range(poisson(self.args.attackers * STEP_S, self.rng)):
            scoped = [ScopedLimit("attacker", f"a{next(self.attacks)}", self.attacker_limit)]
            where = pick(self.weights, self.rng)
            self.spawn(self.one(self.limiters[where], scoped, False,
                                self.attacker_limit.burst, honest=False))

    async def go(self) -> dict:
        warm, steps = int(self.args.warmup / STEP_S), int(self.args.seconds / STEP_S)
        tick_every = max(1, int(self.config.tick_s / STEP_S))
        self.reweigh()
        began, ops_before = self.clock.now(), Counter()
        for step in range(-warm, steps):
            now, measured = self.clock.now(), step >= 0
            if step == 0:  # the fleet is warm: count from here
                ops_before = Counter(self.store.ops_by_scope)
                self.kinds_before = Counter(self.store.ops_by_kind)
            self.events(step, steps, warm)
            self.arrivals(began, now, measured)
            self.attackers()
            if step % tick_every == 0:
                for lim in self.limiters:
                    self.spawn(lim.maintain())
            await self.clock.advance(STEP_S)
        for _ in range(int(5 / STEP_S)):  # let leases and returns in flight finish
            if not self.pending:
                break
            await self.clock.advance(STEP_S)
        return measure(self, ops_before)
