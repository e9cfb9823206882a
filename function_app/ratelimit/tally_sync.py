"""The tally's storage side: publish this instance's demand, learn the summary, aggregate.

Per period, an instance with traffic makes two storage calls at a random offset into the next
period: it replaces its own row (no ETag: only it writes there) and reads the summary. One
instance is the aggregator: at half a period it reads every group partition (one query each,
RATE_LIMIT_EXPECTED_INSTANCES / GROUP_SIZE of them) and replaces the summary under the ETag it
last wrote. A summary older than TAKEOVER_PERIODS is taken over by whichever instance notices
first (a conditional write, so one wins); an aggregator that finds no instance row for
IDLE_PERIODS stops, so an idle fleet makes no storage calls at all. The maths is in tally.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random

from function_app.core.clock import Clock
from function_app.core.store_errors import StoreConflict, StoreError
from function_app.ratelimit import tally
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.guarded import GuardedStore
from function_app.ratelimit.store import RowKey

log = logging.getLogger(__name__)
SUMMARY = RowKey("_tally", "summary")
GROUP_SIZE = 100  # instances per group partition: ~100 writes + 100 rows read per period
TAKEOVER_PERIODS = 3
IDLE_PERIODS = 3
GONE_PERIODS = 20  # an instance row this old belongs to a crashed instance: delete it
AGGREGATE_AT = 0.5  # fraction of a period after its end when the aggregator reads the rows


def group_count(expected_instances: int) -> int:
    return max(1, min(64, math.ceil(expected_instances / GROUP_SIZE)))


class TallySync:
    """One instance's demand ledger and its view of everyone's (see the module docstring)."""

    def __init__(self, store: GuardedStore, clock: Clock, period_s: float, groups: int,
                 instance: str, rng: random.Random, counters: Counters) -> None:
        self._store, self._clock, self._counters = store, clock, counters
        self.period_s, self._groups = period_s, groups
        self.me = tally.member_id(instance)
        self._row = RowKey(f"_tally.g{int(self.me, 16) % groups}", self.me)
        self._offset = rng.uniform(0.05, 0.35) * period_s
        self.view: tally.View | None = None
        self._raw: dict[int, dict[str, float]] = {}
        self._published: dict[int, dict[str, float]] = {}
        self._rates: dict[str, float] = {}
        self._synced = -1  # the last period whose row was written (or found empty)
        self._leader_etag: str | None = None
        self._aggregated, self._idle = -1, 0
        self._row_etag: str | None = None
        self._task: asyncio.Task | None = None
        self._attempted = float("-inf")

    def period(self, now: float) -> int:
        return math.floor(now / self.period_s)

    def record(self, kid: str, cost: float, rate: float, now: float) -> None:
        """Demand seen on a key (admitted, or asked of the scope that denied it)."""
        raw = self._raw.setdefault(self.period(now), {})
        raw[kid] = max(0.0, raw.get(kid, 0.0) + cost)
        self._rates[kid] = rate

    def own(self, kid: str) -> float:
        """This instance's published demand on a key for the current view's period."""
        if self.view is None:
            return 0.0
        return self._published.get(self.view.period, {}).get(kid, 0.0)

    def usable(self, now: float) -> bool:
        return self.view is not None and self.period(now) - self.view.period <= tally.STALE_PERIODS

    def stale(self, now: float) -> bool:
        """No view recent enough to decide on: a request waits for one sync."""
        return self.view is None or self.period(now) - self.view.period > 2

    @property
    def leading(self) -> bool:
        return self._leader_etag is not None

    async def refresh(self, now: float, force: bool = True) -> None:
        """Sync now: publish the last period's row and read the summary (a request finding no
        recent view waits for this; `force` reads even with nothing to publish). One at a time;
        storage errors propagate (GuardedStore has counted them)."""
        if self._task is None:
            if force and now - self._attempted < self.period_s / 2:
                return  # tried moments ago: decide on what is known (or the failure mode)
            self._task = asyncio.create_task(self._sync(self.period(now) - 1, force))
        task = self._task
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._task is task:
                self._task = None

    async def tick(self, now: float) -> None:
        """Publish and read when a period has ended (at this instance's offset); aggregate
        when leading. Storage errors are counted by GuardedStore and left to the next tick."""
        done = self.period(now) - 1
        start = (done + 1) * self.period_s
        if done > self._synced and now >= start + self._offset and self._task is None:
            await self.refresh(now, force=False)
        if self.leading and done > self._aggregated and now >= start + AGGREGATE_AT * self.period_s:
            await self._aggregate(done, now)

    async def _sync(self, done: int, force: bool) -> None:
        self._attempted = self._clock.now()
        if done > self._synced:
            self._synced = done
            self._published[done] = tally.published(self._raw.pop(done, {}),
                                                    self._published.get(done - 1, {}))
            for old in [p for p in self._raw if p < done]:
                del self._raw[old]
            for old in [p for p in self._published if p < done - 4]:
                del self._published[old]
            live = set(self._published[done]).union(*self._raw.values())
            self._rates = {kid: rate for kid, rate in self._rates.items() if kid in live}
        body = self._published.get(done, {})
        if not body and not force:
            return
        fields, dropped = tally.instance_fields(done, self._clock.now(), body, self._rates)
        if dropped:
            self._counters.incr("tally_keys_dropped", dropped)
        self._counters.incr("tally_syncs")
        put = self._store.put(self._row, fields)
        if self.leading:
            self._row_etag = await put
            return
        found, self._row_etag = await asyncio.gather(self._store.read(SUMMARY), put)
        parsed = tally.parse_summary(found.fields) if found is not None else None
        now = self._clock.now()
        if parsed is not None:
            view, _by, at = parsed
            if self.view is None or view.period >= self.view.period:
                self.view = view
            if now - at <= TAKEOVER_PERIODS * self.period_s:
                return
        await self._take_over(done, found.etag if found is not None else None, now)

    async def _take_over(self, done: int, etag: str | None, now: float) -> None:
        """The summary is missing or stale: aggregate `done` now and claim the summary."""
        self._leader_etag = etag or ""
        try:
            await self._aggregate(done, now)
        finally:
            if self.leading:
                self._counters.incr("tally_takeovers")
                log.info("rate limiter: this instance now aggregates the tally")

    async def _aggregate(self, done: int, now: float) -> None:
        self._aggregated = done
        rows = []
        results = await asyncio.gather(
            *(self._store.query(f"_tally.g{g}") for g in range(self._groups)))
        gone = now - GONE_PERIODS * self.period_s
        for stored in (row for group in results for row in group):
            parsed = tally.parse_instance(stored.key.row, stored.fields)
            if parsed is not None and parsed.at >= gone:
                rows.append(parsed)
            elif stored.key != self._row:
                await self._forget(stored.key, stored.etag)
        view = tally.aggregate(rows, done, self.period_s)
        self._idle = 0 if view.members else self._idle + 1
        fields = tally.summary_fields(view, self.me, self._clock.now())
        etag = self._leader_etag or None
        try:
            self._leader_etag = await self._store.write(SUMMARY, fields, etag)
        except StoreConflict:
            self._leader_etag = None  # another instance aggregates now
            return
        self._counters.incr("tally_aggregations")
        self.view = view
        if self._idle >= IDLE_PERIODS:
            await self._resign()

    async def _forget(self, key: RowKey, etag: str) -> None:
        try:
            await self._store.delete(key, etag)
        except StoreConflict:
            pass  # it wrote again: not gone after all

    async def _resign(self) -> None:
        """Stop aggregating; an old `at` lets the next active instance take over at once."""
        if self._leader_etag:
            fields = dict(tally.summary_fields(self.view or tally.View(-1, 0, frozenset(), {}),
                                               self.me, 0.0))
            try:
                await self._store.write(SUMMARY, fields, self._leader_etag)
            except StoreConflict:
                pass
        self._leader_etag = None

    async def close(self) -> None:
        """Leave: resign if aggregating, and delete this instance's row (best effort)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            if self.leading:
                await self._resign()
            if self._row_etag is not None:
                await self._store.delete(self._row, self._row_etag)
        except StoreError as exc:
            log.info("rate limiter: tally cleanup skipped (%s)", type(exc).__name__)
