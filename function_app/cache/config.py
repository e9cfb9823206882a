"""The cache's settings as one frozen value, and what they say about a route or a model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..core.fields import from_setting

OFF, SHARED, PER_CLIENT = "off", "shared", "per-client"
ALL = "*"


@dataclass(frozen=True)
class CacheConfig:
    """The CACHE_* settings (settings/specs.py says what each means) and the credential headers."""

    ttl_s: int = from_setting("cache_ttl_seconds", 30)
    max_entry_bytes: int = from_setting("cache_max_entry_bytes", 1048576)
    route_modes: Mapping[str, str] = from_setting("cache_routes", {})
    # models and/or route paths; "*" for all
    completions: frozenset[str] = from_setting("cache_completions", frozenset())
    completions_shared: bool = from_setting("cache_completions_shared", False)
    hit_charges_tokens: bool = from_setting("cache_hit_charges_tokens", False)
    credential_headers: frozenset[str] = frozenset({"authorization", "api-key", "x-api-key",
                                                   "cookie"})

    def route_mode(self, route_path: str) -> str:
        """off, shared or per-client for a GET route (listed routes by their path; else shared)."""
        return self.route_modes.get(route_path, SHARED)

    def completions_on(self, model: str, route_path: str) -> bool:
        """Whether completions of `model` on `route_path` are cached without being asked."""
        wanted = self.completions
        return ALL in wanted or model in wanted or route_path in wanted
