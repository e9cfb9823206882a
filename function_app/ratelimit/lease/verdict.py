"""Lease mode's verdict for one scope: its leased pool pays, or the lease outcome says why not;
and the commit of an admitted request's cost into the pools (shared rules in ratelimit/judge.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from function_app.ratelimit import bucket
from function_app.ratelimit.judge import CONTENTION, DRY, POOL, Judgement, without_storage
from function_app.ratelimit.lease.keystate import KeyState
from function_app.ratelimit.lease.leaser import Outcome


def judge(
    ks: KeyState, outcome: Outcome | None, cost: float, now: float, *,
    failure_mode: str, expected_instances: int, storage_retry_s: float, contention_s: float,
) -> Judgement[KeyState]:
    """The verdict for one scope given its pool and, if it had to lease, the lease outcome."""
    limit = ks.limit
    if ks.pool(now) >= cost:
        left = max(0.0, ks.remaining(now) - cost)
        return Judgement(ks, True, POOL, left, bucket.wait_for(left, limit.burst, limit))
    if outcome is Outcome.UNAVAILABLE:
        return without_storage(ks, cost, now, failure_mode, expected_instances, storage_retry_s)
    if outcome is Outcome.CONTENTION:
        return Judgement(ks, False, CONTENTION, 0.0, 0.0, contention_s)
    # retry_at is for the smallest request refused with this one: a larger one waits longer.
    retry = max(ks.retry_at - now, bucket.wait_for(ks.remaining(now), cost, limit), 0.001)
    return Judgement(ks, False, DRY, 0.0, bucket.wait_for(0.0, limit.burst, limit), retry)


def commit(judgements: Sequence[Judgement[KeyState]], cost: float) -> None:
    """Spend `cost` from every scope that admitted (pool or local safe bucket)."""
    for item in judgements:
        if not item.ok:
            continue
        if item.source == POOL:
            item.ks.spend(cost)
        elif item.fallback_state is not None:
            item.ks.fallback = item.fallback_state
