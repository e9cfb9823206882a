"""Lease mode's hot path: a request whose every scope has a live pool that pays it.

`Limiter._decide` (lease/limiter.py) reaches the same answer through verdicts, judgements and a
Decision built per request, two dozen calls per scope; here the same arithmetic is inlined:
look the keys up, check each pool, pick the scope with the least left (admitted.py), spend,
observe the demand and check whether a background top-up is due. Anything else (a key not
seen yet, a changed limit, a pool that cannot pay, a cost above a burst) returns None and the
full path decides, so every guarantee stays where it was. tests/unit/test_limiter_fast.py
checks that both paths leave the same decisions, counters and key states.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from function_app.ratelimit.admitted import admitted
from function_app.ratelimit.lease.keystate import REFILL_AT, KeyState
from function_app.ratelimit.lease.lease import BLOCK_REQUESTS
from function_app.ratelimit.limits import Decision, ScopedLimit

NONE_DUE: tuple[KeyState, ...] = ()


def pools_pay(keys: dict[tuple[str, str], KeyState], scoped: Sequence[ScopedLimit],
              cost: float, now: float) -> list[KeyState] | None:
    """Each scope's state when every one is known here under its current limit and shard
    count, `cost` fits its burst, and its unexpired pool holds `cost`; else None."""
    states = []
    for item in scoped:
        ks = keys.get((item.scope, item.key))
        if ks is None or now >= ks.expires_at or ks.tokens < cost:
            return None
        limit = item.limit
        if ((limit is not ks.limit and limit != ks.limit) or item.shards != ks.shards
                or cost > limit.burst):
            return None
        states.append(ks)
    return states


def decision(states: list[KeyState], cost: float, now: float) -> Decision:
    """The admitted Decision: the scope with the least left after `cost` (the first of equals),
    left as KeyState.remaining less cost (verdict.judge's POOL case)."""
    best, least = states[0], 0.0
    for n, ks in enumerate(states):
        limit = ks.limit
        seen = now - ks.row_seen
        total = ks.tokens + (ks.row_tokens * ks.shards
                             + (seen if seen > 0.0 else 0.0) * limit.rate)
        remaining = limit.burst if limit.burst <= total else total
        left = (remaining if remaining > 0.0 else 0.0) - cost
        left = left if left > 0.0 else 0.0
        if n == 0 or left < least:
            best, least = ks, left
    return admitted(best, best.scope, best.limit, least)


def commit(states: list[KeyState], cost: float, now: float, tau_s: float, lease_s: float,
           hold_s: float, storage_ready: bool) -> list[KeyState] | tuple[KeyState, ...]:
    """Spend `cost` from each pool and observe it (KeyState.spend and observe); the keys whose
    pool is now low enough for a background top-up (Limiter._maybe_refill, needs_refill),
    none when `storage_ready` is False (the caller also passes False to test none)."""
    due: list[KeyState] | tuple[KeyState, ...] = NONE_DUE
    block = BLOCK_REQUESTS * (cost if cost > 0.0 else 0.0)  # lease.block before its cap
    for ks in states:
        left = ks.tokens - cost
        ks.tokens = left if left > 0.0 else 0.0
        amount, elapsed = ks.demand_amount, now - ks.demand_ts
        if elapsed > 0:
            amount = amount * math.exp(-elapsed / tau_s)
        ks.demand_amount = amount + cost
        if now > ks.demand_ts:
            ks.demand_ts = now
        ks.last_used, ks.last_cost = now, cost
        if ks.exact or ks.fetch is not None or ks.retry_at > now or not storage_ready:
            continue
        # KeyState.needs_refill with target and lease.block inlined; the demand was just
        # observed, so its rate is amount / tau (no decay since).
        rate, blk = ks.demand_amount / tau_s, 0.0
        if not ks.reserved:
            blk = block if block <= ks.block_cap else ks.block_cap
        held, periods = rate * hold_s, rate * lease_s * 2
        spendable = blk if blk <= held else held
        target = cost  # max(last_cost, periods, spendable), the first of equals
        if periods > target:
            target = periods
        if spendable > target:
            target = spendable
        goal = target if target <= ks.cap else ks.cap
        unit = cost if cost <= goal else goal
        if ks.tokens < unit + (goal - unit) * REFILL_AT:
            due = [*due, ks]
    return due
