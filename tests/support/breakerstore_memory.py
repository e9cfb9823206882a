"""In-memory BreakerStore and ProbeStore: one instance only, same contract as the Table one."""

from __future__ import annotations

import itertools

from function_app.core.store_errors import StoreConflict
from function_app.routing.breaker import SharedState
from function_app.routing.store import BreakerRow, ProbeResult


class MemoryRoutingStore:
    def __init__(self) -> None:
        self._breakers: dict[str, tuple[SharedState, str]] = {}
        self._probes: dict[str, ProbeResult] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._etags = itertools.count(1)
        self.both_reads = 0  # read_both calls (the refresh's one-call read of both kinds)
        self.probe_batches = 0  # record_probes calls (a health-check run's one-call write)

    async def read_breakers(self) -> list[BreakerRow]:
        return [BreakerRow(name, state, etag) for name, (state, etag) in self._breakers.items()]

    async def write_breaker(self, backend: str, state: SharedState, etag: str | None) -> str:
        current = self._breakers.get(backend)
        if (current is None) != (etag is None) or (current and current[1] != etag):
            raise StoreConflict("etag mismatch" if current else "row missing")
        new = f"m{next(self._etags)}"
        self._breakers[backend] = (state, new)
        return new

    async def record_probe(self, result: ProbeResult) -> None:
        self._probes[result.backend] = result

    async def record_probes(self, results: list[ProbeResult]) -> None:
        self.probe_batches += 1
        for result in results:
            self._probes[result.backend] = result

    async def read_probes(self) -> list[ProbeResult]:
        return list(self._probes.values())

    async def read_both(self) -> tuple[list[BreakerRow], list[ProbeResult]]:
        self.both_reads += 1
        return await self.read_breakers(), await self.read_probes()

    async def take_lease(self, name: str, holder: str, ttl_s: float, now: float) -> bool:
        current = self._leases.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._leases[name] = (holder, now + ttl_s)
        return True

    async def close(self) -> None:
        return None
