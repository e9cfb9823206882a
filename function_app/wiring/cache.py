"""Wires the response cache from settings: tiers, the two caches, counters, the stage.

build.py calls it once; the shared tiers' adapters are imported only when chosen, so redis and
the blob SDK load only if used.
"""

from __future__ import annotations

import hashlib
import time

from ..cache.completion_cache import CompletionCache
from ..cache.counters import CacheCounters, report
from ..cache.http_cache import HttpCache
from ..cache.memory import MemoryTier
from ..cache.tier import CacheTier
from ..cache.tiers import TieredCache
from ..core.clock import Clock
from ..core.pipeline import Stage
from ..http.messages import GatewayRequest
from ..settings.specs import Settings
from ..stages.cache import cache_stage
from .gateway import Parts


def open_shared_tier(settings: Settings) -> CacheTier | None:
    """The tier CACHE_BACKEND names (None for memory); load_settings has checked that the
    chosen tier has what it needs."""
    if settings.cache_backend == "redis":
        from ..adapters.cache_redis import RedisCacheTier
        return RedisCacheTier.open(settings.cache_redis_url, entra=settings.cache_redis_entra,
                                   timeout_s=max(1.0, settings.cache_shared_timeout_s))
    if settings.cache_backend == "blob":
        from ..adapters.cache_blob import BlobCacheTier
        return BlobCacheTier.open(settings.cache_blob_connection, settings.cache_blob_endpoint,
                                  settings.cache_blob_container)
    return None


def build_cache_stage(settings: Settings, parts: Parts, clock: Clock,
                      shared: CacheTier | None = None) -> Stage:
    """The cache stage; gives `parts` its report ("cache") and its tiers' close."""
    config = settings.cache
    if shared is None:
        shared = open_shared_tier(settings)
    tiers = TieredCache(MemoryTier(settings.cache_memory_bytes, clock.now), shared,
                        timeout_s=settings.cache_shared_timeout_s, monotonic=time.monotonic)
    counters = CacheCounters()

    def client_of(request: GatewayRequest) -> str:
        """The partition of a per-client entry: the client id and, when the request carries
        credentials, their digest, so two keys behind one address never share an entry."""
        client = request.context.client
        secrets = [request.headers.get(name) or "" for name in sorted(config.credential_headers)]
        if any(secrets):
            client += "|" + hashlib.sha256("\0".join(secrets).encode()).hexdigest()[:32]
        return client

    http = HttpCache(tiers, config, counters, clock.now, client_of)
    completions = CompletionCache(tiers, config, counters, clock.now, client_of)
    parts.stats_sources["cache"] = lambda: report(
        counters, tiers.backend, config.ttl_s, tiers.stats, lambda: http.coalescer.coalesced)
    parts.closers.append(tiers.aclose)
    return cache_stage(http, completions)
