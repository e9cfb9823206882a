"""The process's limiter for RATE_LIMIT_SYNC: leases (lease/limiter.py, Limiter) or tally
shares (tally/limiter.py, TallyLimiter); both keep the contract of engine.LimiterEngine."""

from __future__ import annotations

from function_app.core.clock import Clock
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.engine import LimiterEngine
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.store import RateLimitStore
from function_app.ratelimit.tally.limiter import TallyLimiter


def make_limiter(store: RateLimitStore, clock: Clock, config: LimiterConfig,
                 instance_id: str) -> LimiterEngine:
    if config.sync == "tally":
        return TallyLimiter(store, clock, config, instance_id)
    return Limiter(store, clock, config, instance_id)
