"""The upstream step's shared parts: one `Router` per gateway, shared by every request.

It holds what outlives a request: the upstream client, the breakers shared across instances,
the retry budgets per route, the outstanding counts that `pick_backend` weighs, the stats and
the `Outbound` that builds each attempt's request (target_request.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.upstream import Upstream
from .breakers import SharedBreakers
from .budget import RetryBudget
from .stats import RoutingStats
from .target_request import Outbound, PlainOutbound


@dataclass
class Router:
    """What the attempt loop shares across requests: one per gateway."""

    upstream: Upstream
    breakers: SharedBreakers
    connect_timeout_s: float
    max_tries: int = 2  # attempts per target
    budget: Callable[[], RetryBudget] = RetryBudget
    stats: RoutingStats = field(default_factory=RoutingStats)
    outstanding: dict[str, int] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    budgets: dict[str, RetryBudget] = field(default_factory=dict)
    outbound: Outbound = field(default_factory=PlainOutbound)  # members' wire and credentials

    def budget_for(self, route: str) -> RetryBudget:
        try:  # not `.get`: no call for a route seen before
            return self.budgets[route]
        except KeyError:
            found = self.budgets[route] = self.budget()
            return found
