"""Counters of the attempt loop per route and backend, read through /_gateway/stats."""

from __future__ import annotations

from typing import Any

FIELDS = ("attempts", "retries", "fallbacks", "budget_refusals", "failures", "served")
MAX_KEYS = 1000


class RoutingStats:
    def __init__(self) -> None:
        self._by: dict[tuple[str, str], dict[str, int]] = {}

    def add(self, route: str, backend: str, field: str, n: int = 1) -> None:
        self.row(route, backend)[field] += n

    def row(self, route: str, backend: str) -> dict[str, int]:
        """The counts of (route, backend), by FIELDS, to add to in place (an attempt adds two
        or three: one look-up)."""
        key = (route, backend)
        try:  # not `.get`: no call for a row that exists (every attempt but the first)
            return self._by[key]
        except KeyError:
            if len(self._by) >= MAX_KEYS:
                key = ("_other", "_other")
            return self._by.setdefault(key, dict.fromkeys(FIELDS, 0))

    def get(self, route: str, backend: str, field: str) -> int:
        return self._by.get((route, backend), {}).get(field, 0)

    def snapshot(self) -> dict[str, Any]:
        by_route: dict[str, dict[str, dict[str, int]]] = {}
        totals = dict.fromkeys(FIELDS, 0)
        for (route, backend), row in self._by.items():
            by_route.setdefault(route, {})[backend] = dict(row)
            for name, value in row.items():
                totals[name] += value
        return {"totals": totals, "by_route": by_route}
