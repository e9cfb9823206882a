"""The storage ports of routing: breaker rows, probe results and the health-check lease.

One row per backend for its breaker, written only on a transition and guarded by its ETag
(`write` with the ETag last read, or None to create; StoreConflict when someone wrote first).
Probe results are plain upserts (the lease already makes one writer). Implementations raise
StoreUnavailable for anything else, so callers can fall back to per-instance breakers.

A store that holds both kinds of rows may also offer `read_both` (RoutingStore): the breaker rows
and the probe results in one storage call, for the refresh that is due to read both; and
`record_probes`: every result of one health-check run in one storage call, all or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .breaker import SharedState

__all__ = ["BreakerRow", "BreakerStore", "ProbeResult", "ProbeStore", "RoutingStore"]


@dataclass(frozen=True)
class BreakerRow:
    backend: str
    state: SharedState
    etag: str


@dataclass(frozen=True)
class ProbeResult:
    backend: str
    ok: bool
    at: float  # wall-clock seconds
    latency_ms: float
    status: int = 0  # 0: no answer


class BreakerStore(Protocol):
    async def read_breakers(self) -> list[BreakerRow]: ...

    async def write_breaker(self, backend: str, state: SharedState, etag: str | None) -> str:
        """Create (etag None) or replace the row; returns the new ETag."""
        ...


class ProbeStore(Protocol):
    async def record_probe(self, result: ProbeResult) -> None: ...

    async def read_probes(self) -> list[ProbeResult]: ...

    async def take_lease(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        """Hold lease `name` for `ttl_s` if it is free, expired or already `holder`'s."""
        ...


class RoutingStore(BreakerStore, ProbeStore, Protocol):
    async def read_both(self) -> tuple[list[BreakerRow], list[ProbeResult]]:
        """`read_breakers()` and `read_probes()` in one storage call."""
        ...

    async def record_probes(self, results: list[ProbeResult]) -> None:
        """`record_probe` of each result in one storage call: all recorded, or none
        (StoreUnavailable)."""
        ...
