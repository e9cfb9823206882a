"""Which limits apply to a request: defaults from settings merged with table overrides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.store import Override

GLOBAL_KEY = "global"


@dataclass(frozen=True)
class LimitDefaults:
    """Limits from settings; a rate of 0 turns that scope off. Routes have no default."""

    global_limit: Limit | None
    client_limit: Limit | None
    global_shards: int = 1


@dataclass(frozen=True)
class OverrideIndex:
    """Overrides by kind then key, as read from the table at one moment."""

    client: Mapping[str, Limit] = field(default_factory=dict)
    route: Mapping[str, Limit] = field(default_factory=dict)


def index_overrides(overrides: Iterable[Override]) -> OverrideIndex:
    """Group overrides by kind; unknown kinds are ignored (the reader already filters them)."""
    client: dict[str, Limit] = {}
    route: dict[str, Limit] = {}
    for item in overrides:
        if item.kind == "client":
            client[item.key] = item.limit
        elif item.kind == "route":
            route[item.key] = item.limit
    return OverrideIndex(client, route)


def defaults_from(
    global_rps: float, global_burst: float, client_rps: float, client_burst: float,
    global_shards: int = 1, shadow_scopes: frozenset[str] = frozenset(),
) -> LimitDefaults:
    """`shadow_scopes` ("global", "client") makes those defaults report-only."""

    def make(rate: float, burst: float, scope: str) -> Limit | None:
        return Limit(rate, max(burst, 1.0), scope in shadow_scopes) if rate > 0 else None

    return LimitDefaults(
        make(global_rps, global_burst, "global"), make(client_rps, client_burst, "client"),
        max(1, global_shards),
    )


def effective_limits(
    defaults: LimitDefaults, overrides: OverrideIndex, client_id: str | None, route: str | None,
) -> list[ScopedLimit]:
    """The scoped limits for one request, narrowest last: global, client, route.

    A client or route override replaces the default for that key (an override of rate 0 and
    burst 0 blocks it). No client id means no client scope; a route is limited only by override.
    """
    scoped: list[ScopedLimit] = []
    if defaults.global_limit is not None:
        scoped.append(
            ScopedLimit("global", GLOBAL_KEY, defaults.global_limit, defaults.global_shards)
        )
    if client_id is not None:
        limit = overrides.client.get(client_id, defaults.client_limit)
        if limit is not None:
            scoped.append(ScopedLimit("client", client_id, limit))
    if route is not None and route in overrides.route:
        scoped.append(ScopedLimit("route", route, overrides.route[route]))
    return scoped
