"""Turning each scope's local state into a verdict, and verdicts into one Decision.

Judging reads state and returns what to commit; nothing is spent until every enforced scope
agrees (all-or-nothing), so a client denial never consumes global tokens. Both modes judge
here: lease mode's per-key state (lease/keystate.py) and tally mode's (tally/limiter.py) are
each a `ScopeState`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from function_app.ratelimit import bucket
from function_app.ratelimit.limits import Decision, Limit, ScopedLimit, clamp_wait

# Where a judgement came from. DRY: the pool ran dry and the row could not pay (Outcome.SHORT).
POOL, FALLBACK, DRY, CONTENTION, CLOSED = "pool", "fallback", "dry", "contention", "closed"


class ScopeState(Protocol):
    """What the shared verdicts read of one (scope, key) at this instance: its name, its
    limit, and the local safe bucket that decides it while storage is unavailable."""

    scope: str
    limit: Limit
    fallback: bucket.BucketState | None


@dataclass
class Judgement[K: ScopeState]:
    """One scope's verdict on one request; `fallback_state` is the bucket to commit (the local
    safe bucket's, or tally mode's share bucket) when it admitted."""

    ks: K
    ok: bool
    source: str
    remaining: float
    reset_s: float
    retry_after_s: float = 0.0
    fallback_state: bucket.BucketState | None = None

    @property
    def without_storage(self) -> bool:
        return self.source in (FALLBACK, CLOSED)


def safe_limit(limit: Limit, expected_instances: int) -> Limit:
    """This instance's share of a limit while storage is unavailable (fail-open mode)."""
    share = max(1, expected_instances)
    return Limit(limit.rate / share, max(1.0, limit.burst / share), limit.shadow)


def without_storage[K: ScopeState](
    ks: K, cost: float, now: float, failure_mode: str, expected_instances: int,
    storage_retry_s: float,
) -> Judgement[K]:
    """The verdict for a scope decided without storage: denied with storage_unavailable
    ("closed"), or by the local safe bucket ("open")."""
    if failure_mode == "closed":
        return Judgement(ks, False, CLOSED, 0.0, 0.0, max(1.0, storage_retry_s))
    local = safe_limit(ks.limit, expected_instances)
    verdict, state = bucket.decide(ks.fallback, local, cost, now)
    return Judgement(
        ks, verdict.allowed, FALLBACK, verdict.remaining, verdict.reset_s,
        verdict.retry_after_s, state,
    )


def settled_fallback(ks: ScopeState, expected_instances: int, delta: float) -> bucket.BucketState:
    """The local safe bucket after a cost it paid was settled by `delta` (a refund when < 0):
    refunds come back there, or a client is limited on its reservations."""
    assert ks.fallback is not None
    local = safe_limit(ks.limit, expected_instances)
    return bucket.settled(ks.fallback, local.burst, delta)


def failure_decision(failure_mode: str) -> Decision:
    """The decision when the limiter itself failed: the failure mode's, never an exception."""
    if failure_mode == "closed":
        return Decision(False, retry_after_s=1.0, storage_unavailable=True, degraded=True,
                        reason="storage_unavailable")
    return Decision(True, degraded=True, reason="ok")


def to_decision[K: ScopeState](judgements: Sequence[Judgement[K]],
                         denier: Judgement[K] | None) -> Decision:
    """One Decision: the denying scope, else a shadow scope that would have denied, else the
    admitted scope with the least remaining."""
    degraded = any(item.without_storage for item in judgements)
    shadow_denier = next((j for j in judgements if not j.ok and j.ks.limit.shadow), None)
    shadow = shadow_denier.ks.scope if shadow_denier is not None else None
    if denier is not None:
        reason = {CLOSED: "storage_unavailable", CONTENTION: "contention"}.get(
            denier.source, "limited"
        )
        return Decision(
            False, denier.ks.scope, denier.ks.limit, 0, denier.reset_s,
            clamp_wait(denier.retry_after_s), denier.source == CLOSED, degraded, shadow, reason,
        )
    ok = [item for item in judgements if item.ok] or list(judgements)
    # A shadow limit that would have denied is reported as if enforced: its headers, no 429.
    tightest = shadow_denier or min(ok, key=lambda item: item.remaining)
    return Decision(
        True, tightest.ks.scope, tightest.ks.limit, math.floor(tightest.remaining),
        tightest.reset_s, 0.0, False, degraded, shadow, "ok",
    )


def never_fits(scoped: Sequence[ScopedLimit], cost: float) -> Decision | None:
    """The refusal of a cost no enforced scope's bucket can ever hold (reason "exceeds_limit",
    no Retry-After: waiting cannot help), or None. A bucket of size 0 is a block (an override
    of rate 0 and burst 0), refused as "limited" like any full bucket."""
    for item in scoped:
        if cost > item.limit.burst > 0 and not item.limit.shadow:
            return Decision(False, item.scope, item.limit, 0, 0.0, 0.0, reason="exceeds_limit")
    return None
