"""Counters for stats and benchmarks: plain integers behind named increments."""

from __future__ import annotations

# Every name the limiter may report, so a snapshot always has the same keys.
NAMES = (
    "decisions", "admitted", "denied", "shadow_denied", "storage_round_trips", "storage_reads",
    "storage_writes", "storage_deletes", "conflicts", "storage_errors", "storage_timeouts",
    "leases", "lease_tokens", "lease_waits", "lease_rounds", "background_refills", "returns",
    "returned_tokens", "dropped_tokens", "contention_denied", "decisions_without_storage",
    "fallback_admitted", "fallback_denied", "storage_unavailable_denied", "sweeps", "swept_rows",
    "internal_errors", "storage_refused", "adjustments", "refunded_tokens", "extra_charged_tokens",
    "tally_syncs", "tally_waits", "tally_aggregations", "tally_takeovers", "tally_keys_dropped",
    "tally_publish_failures", "tally_aggregate_failures", "tally_rows_skipped",
    # Budget pots (tally/pots.py, tally/potgrants.py): granted by the aggregator, taken,
    # decisions they paid, dropped with a remainder, remainders credited back, cut, failed.
    "budget_pots_granted", "budget_pots", "budget_pot_paid", "budget_pots_dropped",
    "budget_unused_credited", "budget_pots_cut", "budget_pot_failures", "budget_exact",
    "budget_refused_empty",
    # Of "admitted": decided by a limiter's fast path (every scope paid from memory).
    "fast_admitted",
)


class Counters:
    """Monotonic counters; `snapshot()` copies them (every name in NAMES present).

    `fast_admitted` counts the decisions a limiter's fast path admitted (engine.acquire): one
    attribute increment per request, added to "decisions", "admitted" and "fast_admitted" by
    `snapshot`.
    """

    def __init__(self) -> None:
        self._values: dict[str, int] = dict.fromkeys(NAMES, 0)
        self.fast_admitted = 0

    def incr(self, name: str, amount: int = 1) -> None:
        """Add to a counter named in NAMES; a misspelt name raises KeyError (a plain dict, so
        the hot path pays one lookup, not a check and then a lookup)."""
        self._values[name] += amount

    def snapshot(self) -> dict[str, int]:
        values = dict(self._values)
        values["decisions"] += self.fast_admitted
        values["admitted"] += self.fast_admitted
        values["fast_admitted"] += self.fast_admitted
        return values

    def decision(self, allowed: bool, shadow: bool, degraded: bool, unavailable: bool) -> None:
        """Count one decision of either limiter (lease or tally mode)."""
        values = self._values
        values["decisions"] += 1
        values["admitted" if allowed else "denied"] += 1
        if shadow:
            values["shadow_denied"] += 1
        if degraded:
            values["decisions_without_storage"] += 1
            if unavailable:
                values["storage_unavailable_denied"] += 1
            else:
                values["fallback_admitted" if allowed else "fallback_denied"] += 1
