"""Lease mode's hot path: a request whose every scope has a live pool that pays it.

`Limiter._decide` (lease/limiter.py) reaches the same answer through verdicts, judgements and a
Decision built per request, two dozen calls per scope; here the same arithmetic is inlined in
one function of two loops: look the keys up, check each pool and estimate what each scope has
left (verdict.judge's POOL case), then spend, observe the demand and check whether a background
top-up is due (KeyState.spend, observe and needs_refill). Anything else (a key not seen yet, a
changed limit, a pool that cannot pay, a cost above a burst) returns None before anything is
changed, and the full path decides, so every guarantee stays where it was.
tests/unit/test_limiter_fast.py checks that both paths leave the same decisions, counters and
key states.

Work skipped without changing a figure (each a cache on the KeyState, with its proof):
- `KeyState.full_from`: once the row as last seen, with its refill since, reaches burst, the
  scope's estimate is burst until the row is seen again (see `_left`).
- `KeyState.admitted` / `admitted_left`: the Decision last made for the same `left` is the
  Decision for it (admitted.py).
- One `exp` per distinct elapsed time: scopes observed together (global and client) decay by
  the same factor, so it is computed once.
- `KeyState.quiet_*`: a pool at least the refill threshold of a larger demand is at least
  the threshold of this one (see `admit` and `_quiet`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import exp

from function_app.core.clock import Clock
from function_app.ratelimit.admitted import admitted
from function_app.ratelimit.guarded import StorageHealth
from function_app.ratelimit.lease.keystate import REFILL_AT, KeyState
from function_app.ratelimit.lease.lease import BLOCK_REQUESTS
from function_app.ratelimit.limits import Decision, ScopedLimit

__all__ = ["REFILL_AT", "FastPath"]


class FastPath:
    """The fast path over one limiter's keys, clock, storage health and demand settings.

    `refill(ks)` starts a background top-up of a key found due (Limiter._start_fetch, counted)
    while storage is not backing off (StorageHealth.ready); a limiter whose refill rule is its
    own passes None and tests its keys itself.
    """

    __slots__ = ("health", "hold_s", "keys", "lease_s", "now", "refill", "tau_s")

    def __init__(self, keys: dict[tuple[str, str], KeyState], clock: Clock,
                 health: StorageHealth, tau_s: float, lease_s: float, hold_s: float,
                 refill: Callable[[KeyState], None] | None) -> None:
        self.keys, self.now, self.health = keys, clock.now, health
        self.tau_s, self.lease_s, self.hold_s = tau_s, lease_s, hold_s
        self.refill = refill

    def admit(self, scoped: Sequence[ScopedLimit], cost: float) -> Decision | None:
        """The admitted Decision when each scope's state is known here under its current limit
        and shard count, `cost` fits its burst and its unexpired pool holds `cost`: every pool
        spent and observed, due top-ups started. Else None, and nothing changed."""
        now = self.now()
        keys = self.keys
        states: list[KeyState] = []
        best: KeyState | None = None
        least = 0.0
        for item in scoped:
            ks = keys.get((item.scope, item.key))
            if ks is None or now >= ks.expires_at or ks.tokens < cost:
                return None
            limit = item.limit
            if ((limit is not ks.limit and limit != ks.limit) or item.shards != ks.shards
                    or cost > limit.burst):
                return None
            # The scope with the least left after `cost` (the first of equals): verdict.judge's
            # POOL case, KeyState.remaining less cost, at least 0 (burst - cost is: see above).
            if now >= ks.full_from:
                left = ks.limit.burst - cost
            else:
                left = _left(ks, cost, now)
            if best is None or left < least:
                best, least = ks, left
            states.append(ks)
        if best is None:
            return None
        # Spend and observe (KeyState.spend and observe); top up a pool now low enough
        # (Limiter._maybe_refill, KeyState.needs_refill).
        decayed_for, factor = 0.0, 1.0
        for ks in states:
            left = ks.tokens - cost
            ks.tokens = left if left > 0.0 else 0.0
            amount, elapsed = ks.demand_amount, now - ks.demand_ts
            if elapsed > 0:  # now > demand_ts, exactly
                if elapsed != decayed_for:  # the same elapsed time decays by the same factor
                    decayed_for, factor = elapsed, exp(-elapsed / self.tau_s)
                amount = amount * factor
                ks.demand_ts = now
            ks.demand_amount = amount = amount + cost
            ks.last_used, ks.last_cost = now, cost
            # Quiet: the threshold never falls as demand grows (each of its steps is
            # monotonic), so one computed for more demand than this bounds it.
            if (amount <= ks.quiet_demand and ks.tokens >= ks.quiet_tokens
                    and cost == ks.quiet_cost):
                continue
            if (self.refill is None or ks.exact or ks.fetch is not None or ks.retry_at > now
                    or now < self.health.down_until):
                continue
            below = self.refill_below(ks, amount, cost)
            if ks.tokens < below:
                self.refill(ks)
            else:
                self._quiet(ks, amount, cost, below)
        last = best.admitted
        if last is not None and best.admitted_left == least:
            return last  # made for this `left` under this limit (update_limit clears it)
        decision = admitted(best, best.scope, best.limit, least)
        best.admitted_left = least
        return decision

    def _quiet(self, ks: KeyState, amount: float, cost: float, below: float) -> None:
        """Mark `ks` quiet (KeyState.quiet_*) for a demand up to `more`, chosen so that its
        threshold is about halfway between `below` (this demand's) and the pool: the threshold
        grows at most in proportion to demand (its part below the cost grows less), so
        scaling demand by (pool + below) / (2 * below) keeps it under that. Only the choice of
        `more` rests on this; `quiet_tokens` is the threshold computed for it, the bound
        itself. A pool that falls halfway, or demand that grows past `more`, is tested again
        (and marked again, each time for half of what is left)."""
        more = amount * ((ks.tokens + below) / (2 * below)) if below > 0.0 else amount
        ks.quiet_demand, ks.quiet_cost = more, cost
        ks.quiet_tokens = self.refill_below(ks, more, cost)

    def refill_below(self, ks: KeyState, demand: float, cost: float) -> float:
        """KeyState.needs_refill's threshold, with target and lease.block inlined, for a key
        whose observed demand (just observed: no decay since) is `demand`: a top-up is due
        when the pool holds less after a request of `cost`."""
        rate, blk = demand / self.tau_s, 0.0
        if not ks.reserved:
            blk = BLOCK_REQUESTS * (cost if cost > 0.0 else 0.0)  # lease.block before its cap
            if blk > ks.block_cap:
                blk = ks.block_cap
        held, periods = rate * self.hold_s, rate * self.lease_s * 2
        spendable = blk if blk <= held else held
        target = cost  # max(last_cost, periods, spendable), the first of equals
        if periods > target:
            target = periods
        if spendable > target:
            target = spendable
        goal = target if target <= ks.cap else ks.cap
        unit = cost if cost <= goal else goal
        return unit + (goal - unit) * REFILL_AT


def _left(ks: KeyState, cost: float, now: float) -> float:
    """KeyState.remaining less `cost`, at least 0, for a pool that pays `cost`.

    The row's part of the estimate, row_tokens * shards + max(0, now - row_seen) * rate, never
    falls as `now` grows (each rounding step is monotonic), and the pool is at least `cost`
    >= 0, so once that part alone reaches burst the estimate is burst until the row is seen
    again or the limit changes (KeyState.saw_row and update_limit reset `full_from`): then the
    caller takes burst - cost without the arithmetic, the same figure this computes."""
    limit = ks.limit
    burst = limit.burst
    seen = now - ks.row_seen
    row = ks.row_tokens * ks.shards + (seen if seen > 0.0 else 0.0) * limit.rate
    if burst <= row:
        ks.full_from = now
    total = ks.tokens + row
    remaining = burst if burst <= total else total
    left = (remaining if remaining > 0.0 else 0.0) - cost
    return left if left > 0.0 else 0.0
