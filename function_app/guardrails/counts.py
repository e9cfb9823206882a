"""Counts of checks by direction, check and outcome, and of PII found by kind (never values).

Read by /_gateway/stats and, through the stats collector, GET /metrics as
`gateway_stats{source="guardrails", key="checks.input.prompt_shields.block"}`.
"""

from __future__ import annotations

from typing import Any

OUTCOMES = ("pass", "block", "redact", "annotate", "unavailable_open", "unavailable_closed")


class CheckCounts:
    def __init__(self) -> None:
        self._checks: dict[tuple[str, str, str], int] = {}
        self._pii: dict[str, int] = {}

    def check(self, direction: str, check: str, outcome: str) -> None:
        key = (direction, check, outcome)
        self._checks[key] = self._checks.get(key, 0) + 1

    def pii(self, counts: dict[str, int]) -> None:
        for kind, n in counts.items():
            self._pii[kind] = self._pii.get(kind, 0) + n

    def snapshot(self) -> dict[str, Any]:
        checks: dict[str, dict[str, dict[str, int]]] = {}
        for (direction, check, outcome), n in self._checks.items():
            checks.setdefault(direction, {}).setdefault(check, {})[outcome] = n
        return {"checks": checks, "pii_found": dict(self._pii)}
