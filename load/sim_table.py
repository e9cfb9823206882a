"""A modelled Azure Table Storage for the simulator: the RateLimitStore contract on a virtual clock.

Every operation takes a latency drawn from a log-normal distribution (median and p99 below),
then applies at its completion time, so optimistic-concurrency conflicts (412/409) happen as
they would over a network: a read, a write by someone else, then a stale conditional write.
Throughput caps follow Azure's documented scalability targets: about 2,000 entities per second
per partition and 20,000 transactions per second per account; an operation above either cap in
its one-second window is answered 503 ServerBusy (StoreUnavailable), as Azure does.

Latency figures: Azurite on these machines measured a read plus conditional write at about 6 ms
p50 (FACTS.md), i.e. ~3 ms per operation; Azure publishes no latency bound for Tables, and
single-digit-millisecond medians with tails of tens of milliseconds are the usual experience.
The model uses a 5 ms median and a 25 ms p99 (log-normal), overridable per run.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.core.store_errors import StoreUnavailable
from function_app.ratelimit.store import Fields, RowKey, StoredRow
from tests.support.clock import FakeClock

PARTITION_CAP = 2_000  # entities per second per partition (documented target)
ACCOUNT_CAP = 20_000  # transactions per second per account (documented target)
Z99 = 2.326  # standard normal 99th percentile


class SimTableStore:
    """RateLimitStore with modelled latency, conflicts and ServerBusy; counts per partition."""

    def __init__(self, clock: FakeClock, rng: random.Random, *, median_ms: float = 5.0,
                 p99_ms: float = 25.0, busy: float = 0.0) -> None:
        self._clock, self._rng = clock, rng
        self._busy = busy  # a fraction of operations refused anyway (partial throttling)
        self._inner = MemoryRateLimitStore()
        self._mu = math.log(median_ms / 1000)
        self._sigma = math.log(p99_ms / median_ms) / Z99
        self.ops = 0
        self.ops_by_scope: Counter[str] = Counter()  # "global", "client", ... (partition prefix)
        self.server_busy = 0
        self.ops_by_kind: Counter[str] = Counter()  # "put _tally.g", "query _tally.g", ...
        self.busy_by_kind: Counter[str] = Counter()  # of those, answered ServerBusy
        self._partition_window: dict[int, Counter[str]] = defaultdict(Counter)
        self._account_window: Counter[int] = Counter()

    def latency(self) -> float:
        return self._rng.lognormvariate(self._mu, self._sigma)

    def hottest_partition(self) -> str:
        """The partition that received the most entities in any one-second window."""
        best = max(((n, p) for c in self._partition_window.values() for p, n in c.items()),
                   default=(0, ""))
        return best[1]

    def hottest_partition_ops_per_s(self) -> int:
        """The most operations any partition received in any one-second window."""
        return max((max(c.values()) for c in self._partition_window.values() if c), default=0)

    def _admit(self, partition: str, entities: int = 1, op: str = "read") -> None:
        """One transaction touching `entities` entities of `partition` (a query: every row it
        returns counts against the partition's entities-per-second target)."""
        second = int(self._clock.now())
        self.ops += 1
        kind = f"{op} {partition.rstrip('0123456789')}"
        self.ops_by_kind[kind] += 1
        scope = partition.split(":", 1)[0]
        self.ops_by_scope["tally" if scope.startswith("_tally") else scope] += 1
        window = self._partition_window[second]
        window[partition] += max(1, entities)
        self._account_window[second] += 1
        if (window[partition] > PARTITION_CAP or self._account_window[second] > ACCOUNT_CAP
                or (self._busy and self._rng.random() < self._busy)):
            self.server_busy += 1
            self.busy_by_kind[kind] += 1
            raise StoreUnavailable("503 ServerBusy")

    async def read(self, key: RowKey) -> StoredRow | None:
        await self._clock.sleep(self.latency())
        self._admit(key.partition)
        return await self._inner.read(key)

    async def write(self, key: RowKey, fields: Fields, etag: str | None) -> str:
        await self._clock.sleep(self.latency())
        self._admit(key.partition, op="write")
        return await self._inner.write(key, fields, etag)

    async def put(self, key: RowKey, fields: Fields) -> str:
        await self._clock.sleep(self.latency())
        self._admit(key.partition, op="put")
        return await self._inner.put(key, fields)

    async def query(self, partition: str) -> list[StoredRow]:
        await self._clock.sleep(self.latency())
        rows = await self._inner.query(partition)
        self._admit(partition, len(rows), op="query")
        return rows

    async def delete(self, key: RowKey, etag: str) -> None:
        await self._clock.sleep(self.latency())
        self._admit(key.partition, op="delete")
        await self._inner.delete(key, etag)

    async def scan(self, updated_before: float, limit: int) -> list[StoredRow]:
        await self._clock.sleep(self.latency())
        self._admit("_scan")
        return await self._inner.scan(updated_before, limit)

    async def close(self) -> None:
        return None
