"""The cache's settings as one frozen value, and what they say about a route or a model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

OFF, SHARED, PER_CLIENT = "off", "shared", "per-client"
ALL = "*"


@dataclass(frozen=True)
class CacheConfig:
    ttl_s: int = 30
    max_entry_bytes: int = 1024 * 1024
    route_modes: Mapping[str, str] = field(default_factory=dict)
    completions: frozenset[str] = frozenset()  # models and/or route paths; "*" for all
    completions_shared: bool = False
    hit_charges_tokens: bool = False
    credential_headers: frozenset[str] = frozenset({"authorization", "api-key"})

    def route_mode(self, route_path: str) -> str:
        """off, shared or per-client for a GET route (listed routes by their path; else shared)."""
        return self.route_modes.get(route_path, SHARED)

    def completions_on(self, model: str, route_path: str) -> bool:
        """Whether completions of `model` on `route_path` are cached without being asked."""
        wanted = self.completions
        return ALL in wanted or model in wanted or route_path in wanted
