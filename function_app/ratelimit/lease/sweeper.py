"""Deleting idle bucket rows (Table Storage has no TTL), one instance at a time.

Every instance checks at a jittered interval; the one that wins a conditional write on the
sweep-lease row sweeps, the others see a live lease or a 412 and skip. A row is deleted only
when it is idle, has no live lease and is full, so deleting it loses nothing (a missing row
reads as a full bucket); the delete is conditional on the ETag read, so a row that was leased
from meanwhile survives.
"""

from __future__ import annotations

import random

from function_app.core.clock import Clock
from function_app.core.store_errors import StoreConflict, StoreUnavailable
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.guarded import GuardedStore
from function_app.ratelimit.lease import lease
from function_app.ratelimit.lease.keys import SWEEP_PARTITION, SWEEP_ROW
from function_app.ratelimit.store import RowKey

SWEEP_KEY = RowKey(SWEEP_PARTITION, SWEEP_ROW)
SWEEP_BATCH = 500


class Sweeper:
    def __init__(
        self, store: GuardedStore, clock: Clock, cfg: LimiterConfig, counters: Counters,
        instance: str, rng: random.Random,
    ) -> None:
        self._store, self._clock, self._cfg = store, clock, cfg
        self._counters, self._instance, self._rng = counters, instance, rng
        self._next_at = clock.now() + self._interval()

    def _interval(self) -> float:
        return self._cfg.sweep_interval_s * self._rng.uniform(0.5, 1.5)

    async def maybe_sweep(self, now: float) -> int:
        """Sweep if due and this instance wins the sweep lease; returns rows deleted."""
        if now < self._next_at:
            return 0
        self._next_at = now + self._interval()
        try:
            if not await self._claim(now):
                return 0
            return await self.sweep(now)
        except (StoreUnavailable, StoreConflict):
            return 0

    async def _claim(self, now: float) -> bool:
        current = await self._store.read(SWEEP_KEY)
        if current is not None:
            owner = str(current.fields.get("owner", ""))
            until = float(current.fields.get("until", 0.0))
            if until > now and owner != self._instance:
                return False
        fields = {"owner": self._instance, "until": now + self._cfg.sweep_interval_s, "ts": now}
        try:
            await self._store.write(SWEEP_KEY, fields, current.etag if current else None)
        except StoreConflict:
            return False
        return True

    async def sweep(self, now: float) -> int:
        """Delete up to SWEEP_BATCH idle rows (call `maybe_sweep` outside tests)."""
        rows = await self._store.scan(now - self._cfg.sweep_idle_s, SWEEP_BATCH)
        deleted = 0
        for stored in rows:
            if stored.key.partition == SWEEP_PARTITION:
                continue
            try:
                row = lease.row_from_fields(stored.fields)
            except ValueError:
                continue
            if not lease.is_idle(row, now, self._cfg.sweep_idle_s):
                continue
            try:
                await self._store.delete(stored.key, stored.etag)
            except StoreConflict:
                continue
            deleted += 1
        self._counters.incr("sweeps")
        self._counters.incr("swept_rows", deleted)
        return deleted
