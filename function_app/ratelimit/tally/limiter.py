"""The limiter in tally mode (RATE_LIMIT_SYNC=tally): every decision is local, against this
instance's share of each limit (tally.py; docs/ratelimit-tally.md); storage is touched twice
per period by an instance with traffic (sync.py), never per request or per key.

Same contract as lease mode's Limiter (ratelimit/lease/limiter.py): `acquire` never raises
and decides all scopes or none, `adjust` settles reservations, shadow limits report without
denying. Without a view recent enough (tally.STALE_PERIODS) the failure mode decides, as in
lease mode: "open" admits up to rate / N locally, N the fleet the last summary counted
(RATE_LIMIT_EXPECTED_INSTANCES before any), "closed" denies with storage_unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from function_app.core.clock import Clock
from function_app.core.tasks import every, stop
from function_app.ratelimit import bucket
from function_app.ratelimit.bucket import BucketState
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.engine import LimiterEngine
from function_app.ratelimit.judge import (
    FALLBACK,
    POOL,
    Judgement,
    settled_fallback,
    to_decision,
    without_storage,
)
from function_app.ratelimit.limits import Decision, Limit, ScopedLimit
from function_app.ratelimit.store import RateLimitStore
from function_app.ratelimit.tally import fast, tally
from function_app.ratelimit.tally.budgets import Budgets
from function_app.ratelimit.tally.placement import group_count
from function_app.ratelimit.tally.sync import TallySync

log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)  # slots: see lease/keystate.py, KeyState
class TallyKey:
    """One (scope, key) at this instance: its local bucket for its current share."""

    scope: str
    key: str
    kid: str
    limit: Limit
    unit: float = 1.0
    share: float = 0.0
    local: Limit | None = None
    state: BucketState | None = None
    view: tally.View | None = None  # the summary its share was computed from
    fallback: BucketState | None = None
    last_used: float = 0.0
    # Made before a summary counted this instance's demand on it (a joiner's 1 / E, or a key
    # new here): what it has spent since. The first share computed from a summary of the
    # period it was made in, or later, starts the bucket again, full at that share less this.
    provisional: float | None = None
    made_at: float = 0.0  # when the bucket was made
    opened: float = 0.0  # the tokens it was made with (tally.opening)
    admitted: Decision | None = None  # the fast path's last Decision (ratelimit/admitted.py)

    def apply(self, s: float, now: float, period_s: float, settled: bool) -> None:
        """Take share `s`: tokens refill at the old rate until now, then fit the new capacity;
        a key never seen starts full (its capacity is in the bound). A provisional bucket is
        made again once `settled` (the share counts this instance's demand on the key), less
        what it spent: clipped tokens never come back, and a joiner's 1 / E (or a cold key's
        even part) capped a key it then served alone for good, refusing a client that lived
        on its TPM burst."""
        local = tally.local_limit(self.limit, s, self.unit, period_s)
        if self.state is None or self.local is None:
            self.opened = min(local.burst, tally.opening(self.limit, s, self.unit, period_s))
            self.state = BucketState(self.opened, now)
            self.provisional = None if settled else 0.0
        elif self.provisional is not None and settled:
            # As if it had held this share since it was made: what it opened with (full when
            # alone: an exact bucket), less what it spent, plus that share's refill since. Never
            # full again at a share counted later: a client hopping instances collected a new
            # burst at each (2.23x its allowance over 240 s across 16 instances).
            refill = local.rate * max(0.0, now - self.made_at)
            top = local.burst if s >= 1.0 else self.opened
            self.state = BucketState(min(local.burst, top - self.provisional + refill), now)
            self.provisional = None
        else:
            current = bucket.refill(self.state, self.local, now)
            self.state = BucketState(min(current.tokens, local.burst), current.ts)
        self.share, self.local = s, local

    def spend(self, state: BucketState | None, delta: float) -> None:
        """Commit a decision's bucket (`state`) or settle `delta` afterwards."""
        if state is not None:
            self.state = state
        if self.provisional is not None:
            self.provisional += delta

    def full(self, now: float) -> bool:
        """Refilled to capacity: forgetting it now gives nothing away (a new one starts full)."""
        if self.state is None or self.local is None:
            return True
        return bucket.refill(self.state, self.local, now).tokens >= self.local.burst


class TallyLimiter(LimiterEngine):
    """Decides requests against this instance's shares; one per process."""

    def __init__(self, store: RateLimitStore, clock: Clock, config: LimiterConfig,
                 instance_id: str, *, rng: random.Random | None = None,
                 background: bool = True) -> None:
        """With background=False nothing runs on its own; call `maintain()` (tests)."""
        super().__init__(store, clock, config, instance_id, rng)
        self._sync = TallySync(self._guarded, clock, config.tally_period_s,
                               group_count(config.expected_instances), self.instance,
                               self._rng, self._counters, config.expected_instances)
        self._keys: dict[tuple[str, str], TallyKey] = {}
        # Budgets (rate-0 limits): from pots the aggregator grants off their lease rows, else
        # exactly on those rows (tally/budgets.py); no storage call until one is asked for.
        self._budgets = Budgets(store, clock, config, instance_id, self._rng, background,
                                self._sync)
        self._background = background
        self._task: asyncio.Task | None = None
        self._closed = False

    @property
    def storage_state(self) -> dict[str, object]:
        """The engine's storage state plus the tally's: a publish or aggregate failing shows
        here (/healthz, limiter section) until it works again."""
        return {**self._health.report(), "tally": {**self._sync.report(self._clock.now()),
                                                    "budgets": self._budgets.report(
                                                        self.counters)}}

    @property
    def counters(self) -> dict[str, int]:
        """This instance's counters, the budgets' lease limiter's included."""
        merged = self._counters.snapshot()
        for name, value in self._budgets.exact.counters.items():
            merged[name] = merged.get(name, 0) + value
        return merged

    def _settle(self, scoped: Sequence[ScopedLimit], delta: float) -> None:
        """In the bucket that paid, and in the demand this instance publishes; a budget's in
        its pot or its lease pool."""
        budgets = [item for item in scoped if item.limit.rate <= 0]
        if budgets:
            self._budgets.settle(budgets, delta)
        now = self._clock.now()
        for item in scoped:
            if item.limit.rate <= 0:
                continue
            tk = self._keys.get((item.scope, item.key))
            if tk is None:
                continue
            self._sync.ledger.record(tk.kid, delta, tk.limit.rate, now)
            if tk.fallback is not None and not self._sync.usable(now):
                tk.fallback = settled_fallback(tk, self._sync.fleet(), delta)
            elif tk.state is not None and tk.local is not None:
                tk.spend(bucket.settled(tk.state, tk.local.burst, delta), delta)

    async def maintain(self) -> None:
        """One upkeep pass: probe failing storage, publish/read/aggregate when due, forget."""
        now = self._clock.now()
        if not self._health.healthy and self._health.ready(now) and self._sync.unsynced(now):
            with contextlib.suppress(Exception):
                await self.probe()
        if self._health.ready(now):
            with contextlib.suppress(Exception):  # counted by GuardedStore; next tick retries
                await self._sync.tick(now)
        for name, tk in list(self._keys.items()):
            if now - tk.last_used >= self._cfg.forget_s and tk.full(now):
                del self._keys[name]
        await self._budgets.maintain()

    async def close(self) -> None:
        self._closed = True
        await stop(self._task)
        await self._sync.close()
        await self._budgets.close()

    def _admit(self, scoped: Sequence[ScopedLimit], cost: float) -> Decision | None:
        return fast.admit(self._keys, self._sync, scoped, cost, self._clock.now())

    async def _decide(self, scoped: Sequence[ScopedLimit], cost: float) -> Decision:
        """Shared limits by this instance's shares; budgets (rate 0) from their lease rows,
        through pots or exactly (tally/budgets.py): a budget is a fact (what is left), not a
        share of a rate, and an instance's memory forgets it on restart. All or nothing
        across both: the shares are judged first (no storage), the budget is charged, then
        the shares are judged again and spent, or the budget is refunded."""
        budgets = [item for item in scoped if item.limit.rate <= 0]
        if not budgets:
            return await self._decide_shared(scoped, cost)
        refused = self._budgets.refusal(budgets, cost)
        if refused is not None:
            return refused
        shared = [item for item in scoped if item.limit.rate > 0]
        if shared:
            early = await self._decide_shared(shared, cost, commit=False)
            if not early.allowed:
                return early
        exact, undo = await self._budgets.decide(budgets, cost)
        if not exact.allowed or not shared:
            return exact
        decision = await self._decide_shared(shared, cost)
        if not decision.allowed:  # another request spent the share meanwhile
            undo()
            return decision
        return combined(decision, exact)

    async def _decide_shared(self, scoped: Sequence[ScopedLimit], cost: float,
                             commit: bool = True) -> Decision:
        now = self._clock.now()
        if self._sync.stale(now) and self._health.ready(now):
            with contextlib.suppress(Exception):
                await self._sync.refresh(now)
            now = self._clock.now()
        usable = self._sync.usable(now)
        keys = [self._key(item, cost, now) for item in scoped]
        judgements = [self._judge(tk, cost, now, usable) for tk in keys]
        denier = next((j for j in judgements if not j.ok and not j.ks.limit.shadow), None)
        if not commit and denier is None:
            return to_decision(judgements, None)
        self._sync.ledger.request(now)
        period = self._sync.period_s
        if denier is not None:
            tk = denier.ks
            if cost <= tk.limit.burst:  # a cost no bucket can hold is no demand on the key
                self._sync.ledger.record(tk.kid, cost, tk.limit.rate, now)
            if denier.source == POOL and cost <= tk.limit.burst:
                denier.retry_after_s = min(denier.retry_after_s, 2 * period)
            return to_decision(judgements, denier)
        for j in judgements:
            tk = j.ks
            self._sync.ledger.record(tk.kid, cost, tk.limit.rate, now)
            if j.ok and j.source == POOL:
                tk.spend(j.fallback_state, cost)
            elif j.ok and j.source == FALLBACK:
                tk.fallback = j.fallback_state
        return to_decision(judgements, None)

    def _key(self, item: ScopedLimit, cost: float, now: float) -> TallyKey:
        tk = self._keys.get((item.scope, item.key))
        if tk is None:
            tk = TallyKey(item.scope, item.key, tally.key_id(item.scope, item.key), item.limit)
            self._keys[(item.scope, item.key)] = tk
        elif item.limit != tk.limit:
            # Recompute the share; what it spent under the old limit is no basis for the new.
            tk.limit, tk.view, tk.provisional = item.limit, None, None
        if 0 < cost <= item.limit.burst:
            tk.unit = cost
        tk.last_used = now
        return tk

    def _judge(self, tk: TallyKey, cost: float, now: float,
               usable: bool) -> Judgement[TallyKey]:
        limit = tk.limit
        if not usable:
            return without_storage(tk, cost, now, self._cfg.failure_mode,
                                   self._sync.fleet(), self._health.down_until - now)
        view = self._sync.view
        assert view is not None
        if tk.view is not view:  # a new summary (or the same period counted again)
            ledger, me = self._sync.ledger, self._sync.me
            own, counted = ledger.own(tk.kid, view), ledger.counted(view)
            if tk.state is None:
                tk.made_at = now
            settled = me in view.members and ledger.summed(view) >= self._sync.period(tk.made_at)
            tk.apply(tally.share(view, me, tk.kid, own, limit.rate, self._sync.period_s,
                                 self._cfg.expected_instances, ledger.own_traffic(view),
                                 counted),
                     now, self._sync.period_s, settled)
            tk.view = view
        assert tk.local is not None
        if cost > limit.burst:  # more than the whole limit holds: never, on any instance
            return Judgement(tk, False, POOL, 0.0, 0.0,
                             bucket.wait_for(0.0, cost, limit), tk.state)
        verdict, state = bucket.decide(tk.state, tk.local, cost, now)
        # Remaining across instances, estimated as if every instance were where this one is.
        left = min(limit.burst, verdict.remaining / tk.share) if tk.share > 0 else 0.0
        reset = bucket.wait_for(left, limit.burst, limit)
        return Judgement(tk, verdict.allowed, POOL, left, reset,
                         verdict.retry_after_s, state)

    def _start(self) -> None:
        if self._background and self._task is None and not self._closed:
            self._task = asyncio.create_task(
                every(self._clock, self._cfg.tick_s, self.maintain, "rate limiter maintenance"))


def combined(shared: Decision, exact: Decision) -> Decision:
    """One admitted Decision from the shares' and the budgets': the scope with the least
    remaining speaks for both; degraded or shadow if either was."""
    tightest = exact if exact.remaining < shared.remaining else shared
    return replace(tightest, degraded=shared.degraded or exact.degraded,
                   shadow_scope=shared.shadow_scope or exact.shadow_scope)
