"""Observed demand on one key at one instance: an exponentially decaying rate estimate."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Demand:
    """`amount` is the decayed sum of observed cost as of `ts`; rate = amount / tau."""

    amount: float = 0.0
    ts: float = 0.0


def observe(demand: Demand, cost: float, now: float, tau_s: float) -> Demand:
    """Add `cost` observed at `now`; older observations fade with time constant tau_s."""
    return Demand(decayed(demand, now, tau_s) + cost, max(now, demand.ts))


def decayed(demand: Demand, now: float, tau_s: float) -> float:
    elapsed = now - demand.ts
    if elapsed <= 0:
        return demand.amount
    return demand.amount * math.exp(-elapsed / tau_s)


def rate(demand: Demand, now: float, tau_s: float) -> float:
    """Cost per second observed over roughly the last tau_s seconds."""
    return decayed(demand, now, tau_s) / tau_s
