"""What both limiters share (lease/limiter.py and tally/limiter.py): the
contract's edges, the counters, storage health and the probe. A subclass decides (`_decide`)
and settles (`_settle`); everything here makes sure neither ever raises into a request."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from function_app.core.clock import Clock
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.guarded import GuardedStore, StorageHealth
from function_app.ratelimit.judge import failure_decision
from function_app.ratelimit.limits import Decision, ScopedLimit
from function_app.ratelimit.store import RateLimitStore, RowKey

log = logging.getLogger(__name__)
PROBE_KEY = RowKey("_limiter", "probe")  # never written: reading it only asks "do you answer?"


class LimiterEngine:
    """One per process; see `acquire` and `adjust` for the contract both modes keep."""

    def __init__(self, store: RateLimitStore, clock: Clock, config: LimiterConfig,
                 instance_id: str, rng: random.Random | None) -> None:
        """`instance_id` names the process (a random suffix is added so two processes given the
        same id stay distinct)."""
        self._cfg, self._clock = config, clock
        self._rng = rng or random.Random()
        self.instance = f"{instance_id}.{self._rng.getrandbits(24):06x}"
        self._counters = Counters()
        self._health = StorageHealth(clock, self._rng, config.backoff_min_s, config.backoff_max_s)
        self._guarded = GuardedStore(store, self._health, self._counters, config.storage_timeout_s)
        self._started = False  # `_start` was called (it starts background upkeep once)
        # `_admit`, or what a subclass puts in its place without a frame around it
        self._fast_admit = self._admit

    @property
    def counters(self) -> dict[str, int]:
        return self._counters.snapshot()

    @property
    def storage_healthy(self) -> bool:
        return self._health.healthy

    @property
    def storage_state(self) -> dict[str, object]:
        """The limiter's view of its storage for /healthz: state ("unknown", "ok",
        "unavailable" or "refused"), detail (no secrets), since, consecutive failures."""
        return self._health.report()

    async def acquire(self, scoped: Sequence[ScopedLimit], cost: float = 1) -> Decision:
        """Admit `cost` (>= 0; anything else counts as 0) against every scope or against none.

        Never raises: a limiter bug applies the failure mode. (With limits off no limiter is
        built: the wiring leaves the stage out.)
        """
        if not scoped:
            return Decision(True)
        try:
            if not self._started:
                self._start()
                self._started = True
            amount = float(cost) if cost >= 0 else 0.0  # also maps NaN to 0
            decision = self._fast_admit(scoped, amount)
            if decision is not None:  # every scope paid from memory: counted in one add
                self._counters.fast_admitted += 1
                return decision
            decision = await self._decide(scoped, amount)
        except Exception:  # a limiter bug must not fail the request
            decision = self._failed()
        return self._count(decision)

    def _failed(self) -> Decision:
        """The failure mode's Decision after a limiter bug, logged and counted."""
        log.exception("rate limiter failed; applying the failure mode")
        self._counters.incr("internal_errors")
        return failure_decision(self._cfg.failure_mode)

    def _count(self, decision: Decision) -> Decision:
        self._counters.decision(decision.allowed, decision.shadow_scope is not None,
                                decision.degraded, decision.storage_unavailable)
        return decision

    def admit_now(self, scoped: Sequence[ScopedLimit], cost: float) -> Decision | None:
        """`acquire`'s fast path without a coroutine: the admitted Decision when every scope
        pays `cost` (a float >= 0) from memory, counted as `acquire` counts it; None when that
        cannot be told here (then `acquire` decides, as it would have). Never raises: a limiter
        bug gives the failure mode's Decision, as `acquire` does."""
        if not self._started or not scoped:
            return None  # the first request starts the upkeep in `acquire`
        try:
            decision = self._fast_admit(scoped, cost)
        except Exception:  # as in `acquire`
            return self._count(self._failed())
        if decision is not None:
            self._counters.fast_admitted += 1
        return decision

    def adjust(self, scoped: Sequence[ScopedLimit], delta: float) -> None:
        """Settle an admitted `acquire(scoped, cost)` whose real cost was cost + `delta`.

        The caller passes delta >= -cost, so a refund never returns more than was charged. A
        key decided by its local safe bucket while storage was failing is settled there, or
        refunds never come back and a client is limited on reservations. A key this instance
        has forgotten meanwhile is left alone. Synchronous and never raises, so it is safe in a
        stream's `finally`.
        """
        if not scoped or not delta or delta != delta:  # NaN
            return
        try:
            self._settle(scoped, delta)
            self._counters.incr("adjustments")
            name = "refunded_tokens" if delta < 0 else "extra_charged_tokens"
            self._counters.incr(name, round(abs(delta)))
        except Exception:  # a limiter bug must not fail the answer being settled
            log.exception("rate limiter adjust failed")
            self._counters.incr("internal_errors")

    async def probe(self) -> bool:
        """One read of a row that never exists: True when storage answers. Never raises."""
        try:
            await self._guarded.read(PROBE_KEY)
        except Exception:
            return False
        return True

    async def maintain(self) -> None:
        """One upkeep pass; the background loop calls it (tests call it directly)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop background work and leave storage tidy (best effort)."""
        raise NotImplementedError

    def _start(self) -> None:
        """Start background upkeep on first use (the limiter may be built outside a loop)."""

    def _admit(self, scoped: Sequence[ScopedLimit], cost: float) -> Decision | None:
        """The fast path: the Decision `_decide` would make when it would admit from memory
        with nothing degraded or shadow-denied, with the same effects; None when it cannot
        tell (then `_decide` decides). Synchronous: it never waits."""
        return None

    async def _decide(self, scoped: Sequence[ScopedLimit], cost: float) -> Decision:
        raise NotImplementedError

    def _settle(self, scoped: Sequence[ScopedLimit], delta: float) -> None:
        raise NotImplementedError
