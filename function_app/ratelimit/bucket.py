"""The token bucket as a pure function: `decide(state, limit, cost, now) -> (Verdict, state)`.

State is two numbers, tokens and the wall-clock time they were counted at. Refill is credited
only for time after the newest timestamp seen (`ts` never moves backwards), so a clock that is
behind another instance's never credits the same interval twice.

Guarantee (checked by a property test): for any arrival times and costs, the cost admitted in
any interval [t0, t1] is at most burst + rate * (t1 - t0).
"""

from __future__ import annotations

from dataclasses import dataclass

from function_app.ratelimit.limits import Limit, clamp_wait


@dataclass(frozen=True)
class BucketState:
    tokens: float
    ts: float


@dataclass(frozen=True)
class Verdict:
    """Admitted or not; tokens left after this request; retry_after_s and reset_s in seconds."""

    allowed: bool
    remaining: float
    retry_after_s: float
    reset_s: float


def full(limit: Limit, now: float) -> BucketState:
    """A bucket never used before: full."""
    return BucketState(limit.burst, now)


def refill(state: BucketState, limit: Limit, now: float) -> BucketState:
    """Tokens at `now`: credit rate * (now - ts) for positive elapsed time, capped at burst."""
    elapsed = now - state.ts
    if elapsed <= 0:
        return BucketState(min(state.tokens, limit.burst), state.ts)
    return BucketState(min(limit.burst, state.tokens + elapsed * limit.rate), now)


def settled(state: BucketState, burst: float, delta: float) -> BucketState:
    """`state` after a cost it paid turned out `delta` more (less when negative), at most
    `burst`; it may go below zero: a debt paid before anything more is admitted."""
    return BucketState(min(burst, state.tokens - delta), state.ts)


def wait_for(tokens: float, needed: float, limit: Limit) -> float:
    """Seconds until `tokens` grows to `needed` (capped; "never" is MAX_RETRY_AFTER_S)."""
    missing = needed - tokens
    if missing <= 0:
        return 0.0
    if needed > limit.burst or limit.rate <= 0:
        return clamp_wait(float("inf"))
    return clamp_wait(missing / limit.rate)


def decide(
    state: BucketState | None, limit: Limit, cost: float, now: float
) -> tuple[Verdict, BucketState]:
    """Admit `cost` if the bucket holds that many tokens at `now`; never goes below zero."""
    current = refill(state if state is not None else full(limit, now), limit, now)
    if current.tokens >= cost:
        left = BucketState(current.tokens - cost, current.ts)
        return Verdict(True, left.tokens, 0.0, wait_for(left.tokens, limit.burst, limit)), left
    retry = wait_for(current.tokens, cost, limit)
    reset = wait_for(current.tokens, limit.burst, limit)
    return Verdict(False, current.tokens, retry, reset), current
