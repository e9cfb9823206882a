"""Values the rate limiter speaks in: limits, scoped limits and the one decision per request."""

from __future__ import annotations

import math
from dataclasses import dataclass

from function_app.http.context import Fact

# The values below have slots: a field's default is otherwise a class attribute, which keeps
# CPython 3.13 from specialising reads of that field (lease/keystate.py, KeyState).
MAX_RETRY_AFTER_S = 3600.0  # a limit that can never admit (rate 0, cost > burst) says "an hour"


@dataclass(frozen=True, slots=True)
class Limit:
    """A token bucket: `rate` tokens per second refill up to `burst`; `shadow` means report-only.

    rate >= 0 and burst >= 0. A request of cost c needs c tokens; with c > burst it is never
    admitted. A shadow limit is evaluated and counted like an enforced one but never denies.
    """

    rate: float
    burst: float
    shadow: bool = False

    def __post_init__(self) -> None:
        if not (self.rate >= 0 and self.burst >= 0 and math.isfinite(self.rate + self.burst)):
            raise ValueError(f"invalid limit rate={self.rate} burst={self.burst}")


@dataclass(frozen=True, slots=True)
class ScopedLimit:
    """One limit to apply to a request: scope name ("global", "client", "route"), key, limit.

    `shards` > 1 splits a hot key over that many storage rows (each rate/shards, burst/shards).
    `reserved`: costs are reservations settled afterwards with refunds (token limits); such a
    key leases fair shares, never blocks (ratelimit/lease/lease.py).
    """

    scope: str
    key: str
    limit: Limit
    shards: int = 1
    reserved: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request across all its scopes.

    allowed: admit the request (also true when only shadow limits were exceeded).
    scope / limit: the scope that denied, or when admitted the scope with the least remaining.
    remaining: whole tokens left in that scope (an estimate in lease mode, never negative).
    reset_s: seconds until that scope's bucket would be full again at its rate.
    retry_after_s: when denied, seconds before a retry can succeed (0 when admitted).
    storage_unavailable: denied because storage is down and the failure mode is closed (503).
    degraded: at least one scope was decided without storage (local safe capacity or closed).
    shadow_scope: a shadow limit that would have denied, if any.
    reason: "ok", "limited", "storage_unavailable", "contention" or
    "exceeds_limit" (the cost is larger than the scope's burst: it can never be admitted).
    """

    allowed: bool
    scope: str | None = None
    limit: Limit | None = None
    remaining: int = 0
    reset_s: float = 0.0
    retry_after_s: float = 0.0
    storage_unavailable: bool = False
    degraded: bool = False
    shadow_scope: str | None = None
    reason: str = "ok"


REQUESTS_DECISION: Fact[Decision] = Fact("requests_decision")  # for x-ratelimit-*
TOKENS_DECISION: Fact[Decision] = Fact("tokens_decision")  # for x-ratelimit-*-tokens


def clamp_wait(seconds: float) -> float:
    """A wait that a header can carry: finite, non-negative, at most MAX_RETRY_AFTER_S."""
    if not seconds > 0:
        return 0.0
    return min(seconds, MAX_RETRY_AFTER_S)
