"""The per-instance limiter: in-memory decisions backed by leases on shared Table rows.

Hot path: a request whose scopes all have leased tokens in memory is decided without awaiting
any I/O; a background task tops a pool up when it falls below a quarter of its goal. Only a
pool that ran dry makes a request wait for one lease (shared by all requests waiting on that
key). A row known to be empty is remembered until it should have refilled, so denials above the
limit cost no storage calls. The overshoot bound: docs/RATELIMITS.md.

Storage failures never raise out of `acquire`: in "open" mode a scope that cannot lease is
decided by a local bucket at rate / RATE_LIMIT_EXPECTED_INSTANCES; in "closed" mode it is denied
with `storage_unavailable`. Either way the decision is counted as made without storage, storage
is retried after a jittered back-off, and the limiter recovers by itself when storage answers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from function_app.core.clock import Clock
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.engine import LimiterEngine
from function_app.ratelimit.judge import (
    CONTENTION,
    DRY,
    Judgement,
    never_fits,
    settled_fallback,
    to_decision,
)
from function_app.ratelimit.lease import fast
from function_app.ratelimit.lease.keystate import KeyState
from function_app.ratelimit.lease.leaser import Leaser, Outcome
from function_app.ratelimit.lease.maintenance import Maintenance
from function_app.ratelimit.lease.sweeper import Sweeper
from function_app.ratelimit.lease.verdict import commit, judge
from function_app.ratelimit.limits import Decision, ScopedLimit
from function_app.ratelimit.store import RateLimitStore

log = logging.getLogger(__name__)
FETCH_ROUNDS = 2  # a waiter re-leases once if others emptied the pool it was waiting for
# Whole acquire attempts when a granted pool was emptied by other waiters: a simultaneous burst
# of B requests needs about B / (rate x lease_s) leases, one per round for the last waiters.
ACQUIRE_ROUNDS = 6
# Of those, rounds after a lease gave up on conflicts (RATE_LIMIT_CONFLICT_RETRIES): the row was
# being written by others, not empty, so one more lease (after the jittered back-off) usually
# succeeds; a storm that outlasts it still ends in a short contention denial.
CONTENTION_ROUNDS = 1


class Limiter(LimiterEngine):
    """Decides requests against scoped limits from leased pools; one per process."""

    # The first lease after a pause asks for the previous lease's demand target (see
    # `_lease_target`); a subclass that leases only on demand, by its own rule, turns it off.
    RESUME_AT_LEASE_GOAL = True

    def __init__(
        self, store: RateLimitStore, clock: Clock, config: LimiterConfig, instance_id: str, *,
        rng: random.Random | None = None, background: bool = True,
        jitter_on_clock: bool = False,
        jitter_sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """With background=False nothing runs on its own; call `maintain()` (tests).
        `jitter_on_clock` makes the back-off after a 412 sleep on `clock` (a simulation's
        virtual clock) instead of real time; `jitter_sleep` replaces that sleep outright (a
        test that must not depend on how busy the machine is)."""
        super().__init__(store, clock, config, instance_id, rng)
        guarded = self._guarded
        self._leaser = Leaser(guarded, clock, self._cfg, self._counters, self.instance, self._rng,
                              jitter_sleep or (clock.sleep if jitter_on_clock else None))
        self._keys: dict[tuple[str, str], KeyState] = {}
        sweeper = Sweeper(guarded, clock, self._cfg, self._counters, self.instance, self._rng)
        self._maintenance = Maintenance(
            self._keys, self._leaser, sweeper, self._health, clock, self._cfg, background,
            probe=self.probe,
        )
        # The fast path (lease/fast.py) with the config's figures (its properties are calls).
        # Its inlined refill test stands for `_maybe_refill` unless a subclass replaces that
        # (tally's budgets): then `_admit` tests the keys the fast path admitted.
        self._inline_refill = type(self)._maybe_refill is Limiter._maybe_refill
        self._fast = fast.FastPath(self._keys, clock, self._health, self._cfg.demand_tau_s,
                                   self._cfg.lease_s, self._cfg.hold_s,
                                   self._refill_due if self._inline_refill else None)
        if type(self)._admit is Limiter._admit and self._inline_refill:
            self._fast_admit = self._fast.admit  # no `_admit` frame around it

    def _admit(self, scoped: Sequence[ScopedLimit], cost: float) -> Decision | None:
        """Every scope's live pool pays `cost`: decided from memory (lease/fast.py)."""
        decision = self._fast.admit(scoped, cost)
        if decision is not None and not self._inline_refill:
            now = self._clock.now()  # as the fast path's (a fake clock's), or just after it
            for item in scoped:
                self._maybe_refill(self._keys[(item.scope, item.key)], now)
        return decision

    def _refill_due(self, ks: KeyState) -> None:
        """The fast path found `ks` low (its inlined `_maybe_refill`): top it up."""
        self._counters.incr("background_refills")
        self._start_fetch(ks, 0.0)

    def _start(self) -> None:
        self._maintenance.ensure_running()

    def _settle(self, scoped: Sequence[ScopedLimit], delta: float) -> None:
        """A refund goes into this instance's pool for each scope, where the next requests
        spend it without a storage call; maintenance gives an idle or expired pool back to the
        row as usual. An extra charge (delta > 0) is spent from the pool and may leave it
        negative: a debt that the next lease on the key covers before anything is admitted, at
        most burst less a typical request (the rest is forgiven: an undershoot)."""
        degraded = not self._health.healthy
        for item in scoped:
            ks = self._keys.get((item.scope, item.key))
            if ks is None:
                continue
            if degraded and ks.fallback is not None:
                ks.fallback = settled_fallback(ks, self._cfg.expected_instances, delta)
            else:
                # A debt is repaid by the next lease together with a request; one a full row
                # cannot repay would refuse the key for as long as it is retried (issue #22).
                floor = min(ks.tokens, ks.last_cost - ks.shard_limit.burst)
                ks.tokens = max(ks.tokens - delta, floor)

    async def maintain(self) -> None:
        """One maintenance pass (idle returns, forgetting, sweep); the background loop calls it."""
        await self._maintenance.run_once()

    async def close(self) -> None:
        """Stop background work and give every unused leased token back to storage."""
        await self._maintenance.close()

    async def _decide(self, scoped: Sequence[ScopedLimit], cost: float) -> Decision:
        # A cost no bucket can hold is refused at once (400 for the caller, not a 429 whose
        # Retry-After invites a retry), and never joins other requests' wait for a lease.
        refused = never_fits(scoped, cost)
        if refused is not None:
            return refused
        now = self._clock.now()
        states = [self._state(item, now) for item in scoped]
        contended = 0
        for round_ in range(ACQUIRE_ROUNDS):
            short = [ks for ks in states if ks.pool(now) < cost]
            outcomes = await self._fill_holding(states, short, cost, now) if short else {}
            now = self._clock.now()
            judgements = [self._judge(ks, outcomes.get(ks), cost, now) for ks in states]
            denier = next((j for j in judgements if not j.ok and not j.ks.limit.shadow), None)
            # A scope whose pool other waiters emptied while this request awaited a lease (its
            # own granted one, or another scope's) is not out of tokens: lease again (bounded).
            if denier is not None and denier.source == CONTENTION and contended < CONTENTION_ROUNDS:
                contended += 1
            elif (denier is None or denier.source != DRY
                    or outcomes.get(denier.ks) not in (Outcome.GRANTED, None)):
                break
            if round_ + 1 < ACQUIRE_ROUNDS:
                self._counters.incr("lease_rounds")
        tau = self._cfg.demand_tau_s
        if denier is not None:
            denier.ks.observe(cost, now, tau)
            return to_decision(judgements, denier)
        commit(judgements, cost)
        for ks in states:
            ks.observe(cost, now, tau)
            self._maybe_refill(ks, now)
        return to_decision(judgements, None)

    def _state(self, scoped: ScopedLimit, now: float) -> KeyState:
        ks = self._keys.get((scoped.scope, scoped.key))
        if ks is None:
            ks = KeyState.create(scoped, self._cfg.exact_below_rps, now)
            remembered = self._maintenance.goals.pop((scoped.scope, scoped.key), None)
            if remembered is not None and not ks.exact:  # forgotten by maintenance
                ks.lease_goal, ks.last_used = remembered
            self._keys[(scoped.scope, scoped.key)] = ks
        else:
            ks.update_limit(scoped, self._cfg.exact_below_rps)
        return ks

    def _judge(self, ks: KeyState, outcome: Outcome | None, cost: float,
               now: float) -> Judgement[KeyState]:
        return judge(
            ks, outcome, cost, now, failure_mode=self._cfg.failure_mode,
            expected_instances=self._cfg.expected_instances,
            storage_retry_s=self._health.down_until - now,
            contention_s=self._cfg.contention_retry_after_s,
        )

    async def _fill_holding(
        self, states: list[KeyState], short: list[KeyState], cost: float, now: float
    ) -> dict[KeyState, Outcome]:
        """`_fill`, while maintenance leaves every scope of the request alone (`deciding`).

        Nothing admitted by a key for `idle_return_s` makes it look idle (after a stall of the
        process, or behind slow storage); maintenance then gave back the pool of one scope while
        the request waited for another scope's lease, the scopes took turns at being empty,
        and after ACQUIRE_ROUNDS a far-from-binding limit refused (tests/unit/
        test_limiter_stall.py)."""
        for ks in states:
            ks.deciding += 1
        try:
            return await self._fill(short, cost, now)
        finally:
            for ks in states:
                ks.deciding -= 1

    async def _fill(
        self, short: list[KeyState], cost: float, now: float
    ) -> dict[KeyState, Outcome]:
        """Lease for every scope whose pool cannot pay `cost`, unless the answer is known."""
        outcomes: dict[KeyState, Outcome] = {}
        pending: list[KeyState] = []
        for ks in short:
            if ks.known_short(cost, now):
                outcomes[ks] = Outcome.SHORT
            elif not self._health.ready(now):
                outcomes[ks] = Outcome.UNAVAILABLE
            else:
                pending.append(ks)
        if any(not ks.limit.shadow for ks in outcomes if outcomes[ks] is Outcome.SHORT):
            return outcomes  # an enforced scope denies anyway: lease nothing for the others
        if pending:
            results = await asyncio.gather(*(self._fetch(ks, cost) for ks in pending))
            outcomes.update(zip(pending, results, strict=True))
        return outcomes

    async def _fetch(self, ks: KeyState, cost: float) -> Outcome:
        """Wait for a lease on `ks` (joining one in flight) until its pool can pay `cost`.

        A pool that pays already, with no lease in flight, is GRANTED at once: the wait begins
        a loop turn after the request saw the pool empty (gather makes it a task), and a
        top-up that landed meanwhile must not cost the request a lease and a round trip."""
        if ks.fetch is None and ks.pool(self._clock.now()) >= cost:
            return Outcome.GRANTED
        ks.join(cost)
        try:
            outcome = Outcome.SHORT
            for _ in range(FETCH_ROUNDS):
                task = ks.fetch or self._start_fetch(ks, cost)
                outcome = await asyncio.shield(task)
                if outcome is not Outcome.GRANTED or ks.pool(self._clock.now()) >= cost:
                    return outcome
            # Granted, but other waiters spent it first: the row still had tokens, so this is
            # not a shortage; `_decide` leases again within ACQUIRE_ROUNDS.
            return outcome
        finally:
            ks.leave(cost)

    def _lease_target(self, ks: KeyState, now: float) -> float:
        """How much a lease on `ks` asks for: its demand's target, or what waits if more.

        A lease for waiting requests on a key unused for `idle_return_s` (its pool was given
        back or has expired) asks for at least the demand target of the key's previous lease
        (`KeyState.lease_goal`). The demand estimate decays within a second of a pause, so the
        first lease after one asked for about one request: the requests arriving during its
        round trip each waited for another lease, a chain of round trips behind every pause of
        a busy key (`load/profile_tail.py`: the slowest 1 % of requests at 200/s). The lease
        stays within the fair cap (lease.take), so the overshoot bound is unchanged; a key
        that does not come back at its old rate gives the rest back when idle, and its
        next lease is sized by demand again (`lease_goal` records the demand target only)."""
        cfg = self._cfg
        target = ks.target(now, cfg.lease_s, cfg.demand_tau_s, cfg.hold_s)
        asked = target
        if (self.RESUME_AT_LEASE_GOAL and ks.waiting > 0 and not ks.exact
                and now - ks.last_used >= cfg.idle_return_s and ks.lease_goal > target):
            asked = ks.lease_goal
        ks.lease_goal = target
        return max(asked, ks.waiting)

    def _start_fetch(self, ks: KeyState, cost: float) -> asyncio.Task:
        async def run() -> Outcome:
            try:
                target = self._lease_target(ks, self._clock.now())
                return await self._leaser.lease(ks, target, cost)
            except Exception:  # reported as unavailable, never lost in a task
                log.exception("rate limiter lease failed")
                self._counters.incr("internal_errors")
                return Outcome.UNAVAILABLE
            finally:
                ks.fetch = None

        ks.fetch = asyncio.create_task(run())
        return ks.fetch

    def _maybe_refill(self, ks: KeyState, now: float) -> None:
        """Start a background top-up when the pool runs low (see KeyState.needs_refill)."""
        if ks.exact or ks.fetch is not None or ks.retry_at > now or not self._health.ready(now):
            return
        if ks.needs_refill(now, self._cfg.lease_s, self._cfg.demand_tau_s, self._cfg.hold_s):
            self._counters.incr("background_refills")
            self._start_fetch(ks, 0.0)
