"""Wiring of the request limiter (RATE_LIMIT_*, GLOBAL_*, CLIENT_*): its storage, the limiter of
the process, the source of its limits (defaults and overrides), their counters and /healthz
section."""

from __future__ import annotations

import logging

from function_app.ratelimit.engine import LimiterEngine
from function_app.ratelimit.modes import make_limiter
from function_app.ratelimit.overrides import OverrideSource
from function_app.ratelimit.store import OverrideStore, RateLimitStore

from ..adapters.limitstore_memory import MemoryRateLimitStore
from ..core.clock import Clock
from ..settings.specs import Settings
from .gateway import Parts

log = logging.getLogger(__name__)


async def build_limiter(settings: Settings, parts: Parts, clock: Clock, instance: str,
                        limit_store: RateLimitStore | None = None,
                        override_store: OverrideStore | None = None
                        ) -> tuple[LimiterEngine, OverrideSource]:
    """The one limiter of the process (requests and tokens) and the source of its limits; the
    stores replace the Table ones (tests)."""
    if limit_store is None:
        storage = None
        if settings.rate_limit_storage_connection or settings.table_storage_endpoint:
            # Imported here: the Table SDK loads only when table storage is set (cold start).
            from ..adapters.limitstore_table import open_limit_storage

            storage = open_limit_storage(
                settings.rate_limit_storage_connection, settings.table_storage_endpoint,
                buckets_table=settings.rate_limit_table,
                overrides_table=settings.limit_overrides_table)
        if storage is None:
            log.warning("no limiter storage configured: limits hold for this instance only")
            limit_store = MemoryRateLimitStore()
        else:
            limit_store, override_store = storage.buckets, storage.overrides
            parts.closers.append(storage.close)  # after the routing store's: closed later
            parts.table_service = storage.service
    config = settings.limiter
    limiter = make_limiter(limit_store, clock, config, instance)
    overrides = OverrideSource(override_store, clock, settings.limit_defaults,
                               config.overrides_refresh_s)
    parts.closers += [overrides.close, limiter.close]  # closed in reverse: tokens go back first
    parts.stats_sources["limiter"] = lambda: {**limiter.counters,
                                              "storage_healthy": limiter.storage_healthy}
    parts.stats_sources["overrides"] = lambda: dict(overrides.counters)
    parts.health_sections["limiter"] = lambda: _limiter_health(limiter)
    # One read at start, so refused credentials or a missing table are logged at once.
    await limiter.probe()
    return limiter, overrides


def _limiter_health(limiter: LimiterEngine) -> dict:
    """/healthz: the limiter's storage state; refused storage (a misconfiguration) is not ok."""
    state = limiter.storage_state
    return {"ok": state["state"] != "refused", "storage": state}
