"""What the two caches in front of the backends share: the HTTP GET cache (http_cache.py) and
the completion cache (completion_cache.py) read and write the same tiers, under one config and
one set of counters, on one clock, partitioned per client by the same function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..http.messages import GatewayRequest
from .config import CacheConfig
from .counters import CacheCounters
from .tiers import TieredCache


@dataclass(eq=False)
class CacheFront:
    tiers: TieredCache
    config: CacheConfig
    counters: CacheCounters
    now: Callable[[], float]
    client_of: Callable[[GatewayRequest], str]  # the partition of a per-client entry
