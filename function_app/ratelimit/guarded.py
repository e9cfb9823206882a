"""Every storage call the limiter makes goes through here: timeout, counting, back-off.

`GuardedStore` wraps a RateLimitStore so that a call either returns, raises StoreConflict, or
raises StoreUnavailable, within `timeout_s`. While storage is failing, `StorageHealth` says when
the next attempt may be made (jittered exponential back-off), so a storage outage costs one
timed-out call per back-off period, not one per request. Any success clears the back-off.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable
from typing import TypeVar

from function_app.core.clock import Clock
from function_app.core.store_errors import StoreConflict, StoreRefused, StoreUnavailable
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.store import Fields, RateLimitStore, RowKey, StoredRow

T = TypeVar("T")
log = logging.getLogger(__name__)


class StorageHealth:
    """Consecutive failures and the wall-clock time before which storage is not tried again.

    `state`: "unknown" (never called), "ok", "unavailable" (down or slow: an outage) or
    "refused" (credentials, permissions or a missing table: a misconfiguration, logged as an
    error when it starts). `detail` says why, without secrets.
    """

    def __init__(self, clock: Clock, rng: random.Random, min_s: float, max_s: float) -> None:
        self._clock, self._rng = clock, rng
        self._min_s, self._max_s = min_s, max_s
        self.failures = 0
        self.down_until = 0.0
        self.state = "unknown"
        self.detail = ""
        self.since = clock.now()

    def report(self) -> dict[str, object]:
        """For /healthz and stats: the state, why, since when, consecutive failures."""
        return {"state": self.state, "detail": self.detail, "since": round(self.since, 3),
                "consecutive_failures": self.failures}

    def _enter(self, state: str, detail: str) -> None:
        if state != self.state:
            if state == "refused":
                log.error("rate-limit storage REFUSED the gateway (%s): this is a "
                          "misconfiguration (check the key/identity, its role and the table), "
                          "not an outage; applying the failure mode and retrying", detail)
            elif self.state == "refused":
                log.warning("rate-limit storage accepts the gateway again (%s)", state)
            self.state, self.since = state, self._clock.now()
        self.detail = detail

    def ready(self, now: float) -> bool:
        return now >= self.down_until

    @property
    def healthy(self) -> bool:
        return self.failures == 0

    def failed(self, refused: str | None = None) -> None:
        self._enter("refused" if refused else "unavailable", refused or "no answer in time "
                    "or a failed call")
        self.failures += 1
        delay = min(self._max_s, self._min_s * 2 ** (self.failures - 1))
        self.down_until = self._clock.now() + delay * self._rng.uniform(0.5, 1.0)

    def succeeded(self) -> None:
        if self.state != "ok":
            self._enter("ok", "")
        self.failures = 0
        self.down_until = 0.0


class GuardedStore:
    """A RateLimitStore with a deadline per call, counters and health tracking."""

    def __init__(
        self, store: RateLimitStore, health: StorageHealth, counters: Counters, timeout_s: float
    ) -> None:
        self._store, self.health, self._counters = store, health, counters
        self._timeout_s = timeout_s

    async def read(self, key: RowKey) -> StoredRow | None:
        self._counters.incr("storage_reads")
        return await self._call(self._store.read(key))

    async def write(self, key: RowKey, fields: Fields, etag: str | None) -> str:
        self._counters.incr("storage_writes")
        return await self._call(self._store.write(key, fields, etag))

    async def put(self, key: RowKey, fields: Fields) -> str:
        self._counters.incr("storage_writes")
        return await self._call(self._store.put(key, fields))

    async def query(self, partition: str) -> list[StoredRow]:
        self._counters.incr("storage_reads")
        return await self._call(self._store.query(partition))

    async def delete(self, key: RowKey, etag: str) -> None:
        self._counters.incr("storage_deletes")
        await self._call(self._store.delete(key, etag))

    async def scan(self, updated_before: float, limit: int) -> list[StoredRow]:
        self._counters.incr("storage_reads")
        return await self._call(self._store.scan(updated_before, limit))

    async def _call(self, operation: Awaitable[T]) -> T:
        self._counters.incr("storage_round_trips")
        try:
            result = await asyncio.wait_for(operation, self._timeout_s)
        except StoreConflict:
            self._counters.incr("conflicts")
            self.health.succeeded()  # a 412 is storage answering
            raise
        except TimeoutError:
            self._counters.incr("storage_timeouts")
            self._fail()
            raise StoreUnavailable("storage timed out") from None
        except asyncio.CancelledError:
            raise
        except StoreRefused as exc:
            self._counters.incr("storage_refused")
            self._fail(str(exc))
            raise
        except Exception as exc:  # any other failure means "storage unavailable"
            self._fail()
            raise StoreUnavailable(str(exc) or type(exc).__name__) from None
        self.health.succeeded()
        return result

    def _fail(self, refused: str | None = None) -> None:
        self._counters.incr("storage_errors")
        self.health.failed(refused)
