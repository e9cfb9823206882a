"""The cache's counters for /cachez and /_gateway/stats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NAMES = ("hits", "misses", "bypass", "stored", "not_stored", "too_large",
         "completion_hits", "completion_misses", "completion_stored",
         "completion_not_stored")


class CacheCounters:
    def __init__(self) -> None:
        self.values = dict.fromkeys(NAMES, 0)

    def add(self, name: str, amount: int = 1) -> None:
        self.values[name] += amount


def report(counters: CacheCounters, backend: str, ttl: int, tiers: Callable[[], dict],
           coalesced: Callable[[], int]) -> dict[str, Any]:
    """The prototype's {hits, misses, hit_ratio, backend, ttl} plus tiers and the rest."""
    values = counters.values
    hits = values["hits"] + values["completion_hits"]
    misses = values["misses"] + values["completion_misses"]
    looked = hits + misses
    return {"hits": hits, "misses": misses,
            "hit_ratio": round(hits / looked, 4) if looked else 0.0,
            "backend": backend, "ttl": ttl, "coalesced": coalesced(),
            "counters": dict(values), "tiers": tiers()}
