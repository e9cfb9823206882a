"""Leasing tokens from shared rows and giving them back: the limiter's only storage writes.

One lease is one conditional write (plus a read unless this instance wrote the row last and saw
no recent 412). Conflicts are retried a few times with jitter, then reported as contention so a
412 storm turns into short denials instead of piling up requests.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable

from function_app.core.clock import Clock
from function_app.core.store_errors import StoreConflict, StoreUnavailable
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.guarded import GuardedStore
from function_app.ratelimit.lease import lease
from function_app.ratelimit.lease.keystate import EPSILON, KeyState
from function_app.ratelimit.lease.lease import Grant, Row

# Back-off after a 412 on attempt k: uniform in [0, base * 2**k], base about one storage round
# trip, so writers that collided spread over a few round trips: JITTER_S (Table Storage: a few
# ms), or the recent write round trip when storage is slower (a loaded host, a far region).
JITTER_S = 0.005
RTT_WEIGHT = 0.2  # weight of the newest write round trip in the moving average
# A lease aiming at this share of a block (lease.block) or more is a busy key's: after a
# pause it reads first a row others rewrote (Leaser._current).
BUSY_SHARE = 0.5


class Outcome(enum.Enum):
    GRANTED = "granted"  # tokens were added to the pool
    SHORT = "short"  # the row has too few tokens; ks.retry_at says until when
    CONTENTION = "contention"  # conflict retries exhausted
    UNAVAILABLE = "unavailable"  # storage failed or timed out


class Leaser:
    def __init__(
        self, store: GuardedStore, clock: Clock, cfg: LimiterConfig, counters: Counters,
        instance: str, rng: random.Random,
        jitter_sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self._store, self._clock, self._cfg = store, clock, cfg
        self._counters, self._instance, self._rng = counters, instance, rng
        self._jitter_sleep = jitter_sleep or asyncio.sleep
        self._write_rtt = JITTER_S  # moving average of a conditional write's round trip

    async def lease(self, ks: KeyState, target: float, cost: float) -> Outcome:
        """Top up `ks`'s pool towards `target`; with cost > 0 a request needs that much now."""
        if ks.tokens > EPSILON and self._clock.now() >= ks.expires_at:
            # Maintenance normally returns a pool before it expires; if not, it is forfeit.
            self._counters.incr("dropped_tokens", round(ks.tokens))
            ks.tokens = 0.0
        waits: list[float] = []
        try:
            for shard in ks.shard_order(self._rng):
                outcome, wait = await self._lease_shard(ks, shard, target, cost)
                if outcome is not Outcome.SHORT:
                    return outcome
                waits.append(wait)
        except StoreUnavailable:
            return Outcome.UNAVAILABLE
        # The wait is for the smallest request refused: a larger one adds its own (judge).
        ks.retry_at, ks.retry_cost = self._clock.now() + min(waits), ks.least_waiting(cost)
        self._counters.incr("lease_waits")
        return Outcome.SHORT

    async def _lease_shard(
        self, ks: KeyState, shard: int, target: float, cost: float
    ) -> tuple[Outcome, float]:
        limit = ks.shard_limit
        for attempt in range(self._cfg.conflict_retries + 1):
            row, etag = await self._current(ks, shard, target)
            now = self._clock.now()
            # Requests that joined a top-up while it was reading make it a request lease.
            asked = max(cost, ks.waiting)
            grant = lease.take(
                row, limit, held=ks.tokens, target=max(target, asked), cost=asked,
                instance=self._instance, now=now, lease_s=self._cfg.lease_s,
                ttl_s=self._cfg.lease_ttl_s, unit=ks.last_cost, waiting=ks.waiting,
                blocks=not ks.reserved, least=ks.least_waiting(cost),
            )
            ks.saw_row(grant.available, now)
            if grant.row is None:
                # No write needed is not a shortage: reporting it as one denied requests
                # whose pool was full (issue #10, section 6).
                return (Outcome.SHORT, grant.wait_s) if grant.short else (Outcome.GRANTED, 0.0)
            try:
                new_etag = await self._timed_write(ks.row_key(shard), grant.row, etag)
            except StoreConflict:
                await self._after_conflict(ks, shard, attempt)
                continue
            self._granted(ks, shard, grant, new_etag, now)
            return Outcome.GRANTED, 0.0
        self._counters.incr("contention_denied")
        return Outcome.CONTENTION, self._cfg.contention_retry_after_s

    async def _current(self, ks: KeyState, shard: int, target: float = 0.0
                       ) -> tuple[Row | None, str | None]:
        """The row to compute from: our own last write if trusted, else a fresh read.

        Not trusted: after a 412 on the row (for `read_first_s`), and after a pause of at
        least a lease's life (`lease_ttl_s`: this instance's pool has expired anyway) on a
        row that other instances wrote during an earlier one (`KeyState.rewritten`), when
        the lease aims at a block's BUSY_SHARE or more (`target`: requests arrive faster
        than a round trip, so several queue behind it; a sparse key keeps the write first).
        Instances that take turns on a key (a burst here, then there) found their ETag stale
        after every pause: the write got a 412, waited the conflict back-off, read, and
        wrote again, three round trips before the requests waiting on the lease were
        admitted (docs/perf/pass12-tail.md). Reading first makes it two, and no conflict; a
        read that finds the row as this instance left it clears the mark, so a key that
        stopped being shared goes back to one write."""
        cached = ks.cache.get(shard)
        now = self._clock.now()
        resumed = (cached is not None and shard in ks.rewritten
                   and target >= BUSY_SHARE * lease.block(ks.shard_limit, ks.last_cost)
                   and now - ks.written_at.get(shard, now) >= self._cfg.lease_ttl_s)
        if now - ks.conflict_at.get(shard, -1e18) <= self._cfg.read_first_s:
            resumed = False  # read anyway, for the recent conflict
        elif cached is not None and not resumed:
            return cached
        stored = await self._store.read(ks.row_key(shard))
        if resumed and stored is not None and cached is not None and stored.etag == cached[1]:
            ks.rewritten.discard(shard)  # nobody else wrote it during this pause
        if stored is None:
            return None, None
        try:
            return lease.row_from_fields(stored.fields), stored.etag
        except ValueError:
            return None, stored.etag  # a corrupt row is overwritten with a fresh bucket

    async def _timed_write(self, key: str, row: Row, etag: str | None) -> str:
        """The conditional write, its round trip (a 412 included) kept for the back-off."""
        started = self._clock.now()
        try:
            return await self._store.write(key, lease.row_to_fields(row), etag)
        finally:
            rtt = max(0.0, self._clock.now() - started)
            self._write_rtt += RTT_WEIGHT * (rtt - self._write_rtt)

    async def _after_conflict(self, ks: KeyState, shard: int, attempt: int) -> None:
        ks.cache.pop(shard, None)
        ks.conflict_at[shard] = self._clock.now()
        ks.rewritten.add(shard)
        # Jitter de-synchronises writers that collided; real time, as the writers are real
        # (a simulation on a virtual clock passes the clock's sleep instead).
        base = max(JITTER_S, self._write_rtt)
        await self._jitter_sleep(self._rng.uniform(0, base * 2**attempt))

    def _granted(
        self, ks: KeyState, shard: int, grant: Grant, etag: str, now: float
    ) -> None:
        assert grant.row is not None
        ks.cache[shard] = (grant.row, etag)
        ks.written_at[shard] = now
        ks.capped(grant.cap)
        ks.tokens += grant.tokens
        ks.expires_at = now + self._cfg.lease_ttl_s
        ks.retry_at = 0.0
        ks.last_shard = shard
        self._counters.incr("leases")
        self._counters.incr("lease_tokens", round(grant.tokens))

    async def give_back(self, ks: KeyState, *, release: bool = False) -> None:
        """Return the pool to the row it was last leased from; on failure the tokens are lost
        (an undershoot, never an overshoot). `release` also clears a live lease holding no
        tokens, so other instances' fair share grows at once (shutdown)."""
        tokens, ks.tokens = ks.tokens, 0.0
        live = self._clock.now() < ks.expires_at
        ks.expires_at = 0.0
        if tokens <= EPSILON and not (release and live):
            return
        shard, limit = ks.last_shard, ks.shard_limit
        try:
            for _ in range(self._cfg.conflict_retries + 1):
                row, etag = await self._current(ks, shard)
                now = self._clock.now()
                new_row = lease.returned(row, limit, tokens, self._instance, now)
                try:
                    new_etag = await self._timed_write(ks.row_key(shard), new_row, etag)
                except StoreConflict:
                    await self._after_conflict(ks, shard, 0)
                    continue
                ks.cache[shard] = (new_row, new_etag)
                ks.written_at[shard] = now
                ks.saw_row(new_row.tokens, now)
                self._counters.incr("returns")
                self._counters.incr("returned_tokens", round(tokens))
                return
        except StoreUnavailable:
            pass
        self._counters.incr("dropped_tokens", round(tokens))
