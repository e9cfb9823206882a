"""The limiters' stated bounds as functions, for tests and the simulator to check admitted
cost against (docs/RATELIMITS.md, docs/ratelimit-tally.md). Not used by the gateway."""

from __future__ import annotations

import math

from function_app.ratelimit.lease.lease import block, lease_slice
from function_app.ratelimit.limits import Limit
from function_app.ratelimit.tally.tally import ROOM_SIGMAS


def lease_overshoot_bound(limit: Limit, lease_s: float, instances: int, max_cost: float,
                          max_waiting: float = 0.0, in_flight: float = 0.0,
                          unit: float | None = None) -> float:
    """min(S * H(N) + N * B, N * burst) + W + R: the excess over burst + rate * T stated in
    docs/RATELIMITS.md (lease mode), with B = block(limit, unit) (unit defaults to max_cost),
    W = N * max(c, max_waiting) and R = `in_flight` (reservations refunded later)."""
    n = max(1, instances)
    harmonic = sum(1.0 / j for j in range(1, n + 1))
    blocks = block(limit, max_cost if unit is None else unit)
    held = min(lease_slice(limit, lease_s) * harmonic + n * blocks, n * limit.burst)
    waiting = n * max(max_cost, max_waiting)
    return held + waiting + in_flight


def tally_admitted_bound(limit: Limit, instances: int, unit: float, period_s: float,
                         seconds: float, joined: int, expected: int, counted: int = 0) -> float:
    """The most the stated bound lets a fleet admit on one key in `seconds` (no refunds):
    f(R, B, T, N) of docs/ratelimit-tally.md. `joined` instances joined during the window,
    each taking 1 / max(counted + 1, expected) until counted, where `counted` is the fewest
    instances a summary counted when they joined (0: the whole fleet starting at once). One
    instance that never restarts is an exact bucket (its first view counts it alone, s = 1,
    and its provisional bucket is then made again as if it had held all of it)."""
    if instances <= 1 and joined == 0:
        return limit.burst + limit.rate * seconds
    room = min(limit.rate * period_s,
               ROOM_SIGMAS * math.sqrt(instances * limit.rate * period_s * unit))
    return (limit.burst + room + instances * unit + limit.rate * (seconds + 2 * period_s)
            + joined * (3 * period_s * limit.rate + limit.burst) / max(1, expected, counted + 1))
