"""The tally's storage side: publish this instance's demand, learn the summary, aggregate.

Per period, an instance with traffic makes two storage calls: at a random offset into the next
period it replaces its own row (no ETag: only it writes there), and half a period later it reads
the summary, which then describes the period just published. One instance is the aggregator: at
half a period it reads every group partition (one query each, RATE_LIMIT_EXPECTED_INSTANCES /
GROUP_SIZE of them), replaces the summary under the ETag it last wrote, and puts a copy of it in
one partition per group, where that group's instances read it (no partition serves more than
GROUP_SIZE readers per period). A summary older than TAKEOVER_PERIODS is taken over by whichever
instance notices first (a conditional write, so one wins); an aggregator that finds no instance
row for IDLE_PERIODS stops, so an idle fleet makes no storage calls at all. The maths is in
tally.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable

from function_app.core.clock import Clock
from function_app.core.store_errors import StoreConflict, StoreError
from function_app.ratelimit import tally
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.guarded import GuardedStore
from function_app.ratelimit.store import RowKey, StoredRow

log = logging.getLogger(__name__)
SUMMARY = RowKey("_tally", "summary")
GROUP_SIZE = 100  # instances per group partition: ~100 writes + 100 rows read per period
TAKEOVER_PERIODS = 3
IDLE_PERIODS = 3
GONE_PERIODS = 20  # an instance row this old belongs to a crashed instance: delete it
CLAIM_POLLS, CLAIM_POLL_S = 20, 0.05  # waiting for another instance's first aggregate
AGGREGATE_AT = 0.5  # fraction of a period after its end when the aggregator reads the rows
# After taking over, aggregate every YOUNG_S for YOUNG_PERIODS: instances starting together are
# counted within a second, not a period or two later.
YOUNG_S, YOUNG_PERIODS = 0.5, 2


def copy_key(group: int) -> RowKey:
    """Where the instances of one group read the summary (when there is more than one group)."""
    return RowKey(f"_tally.s{group}", "summary")


def group_count(expected_instances: int) -> int:
    return max(1, min(64, math.ceil(expected_instances / GROUP_SIZE)))


class TallySync:
    """One instance's demand ledger and its view of everyone's (see the module docstring)."""

    def __init__(self, store: GuardedStore, clock: Clock, period_s: float, groups: int,
                 instance: str, rng: random.Random, counters: Counters) -> None:
        self._store, self._clock, self._counters = store, clock, counters
        self.period_s, self._groups = period_s, groups
        self.me = tally.member_id(instance)
        group = int(self.me, 16) % groups
        self._row = RowKey(f"_tally.g{group}", self.me)
        self._copy = copy_key(group) if groups > 1 else SUMMARY
        self._offset = rng.uniform(0.05, 0.35) * period_s  # write; the aggregator reads at 0.5
        self._read_offset = self._offset + 0.5 * period_s  # after the aggregator wrote
        self.view: tally.View | None = None
        self._raw: dict[int, dict[str, float]] = {}
        self._published: dict[int, dict[str, float]] = {}
        self._rates: dict[str, float] = {}
        self._traffic: dict[int, float] = {}  # requests per period, as counted
        self._sent_traffic: dict[int, float] = {}  # as published (smoothed like demand)
        self._synced = -1  # the last period whose row was written (or found empty)
        self._learned = -1  # the last period after whose end the summary was read
        self._written: set[int] = set()  # recent periods whose row storage accepted
        self._leader_etag: str | None = None
        self._aggregated, self._idle = -1, 0
        self._aggregating = asyncio.Lock()
        self._young_until = self._last_aggregate = float("-inf")
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

    def request(self, now: float) -> None:
        """One request decided here (any keys): the instance's traffic, which weighs its part
        of the limits' unused shares (tally.weight)."""
        period = self.period(now)
        self._traffic[period] = self._traffic.get(period, 0.0) + 1

    def own(self, kid: str) -> float:
        """This instance's published demand on a key for the current view's period."""
        if self.view is None:
            return 0.0
        return self._published.get(self.view.period, {}).get(kid, 0.0)

    def counted(self) -> bool:
        """The current view's N counts this instance (its row of the period before is in)."""
        return self.view is not None and self.view.period - 1 in self._written

    def own_traffic(self) -> float:
        """This instance's published request count for the current view's period."""
        if self.view is None:
            return 0.0
        return self._sent_traffic.get(self.view.period, 0.0)

    def usable(self, now: float) -> bool:
        return self.view is not None and self.period(now) - self.view.period <= tally.STALE_PERIODS

    def stale(self, now: float) -> bool:
        """No view recent enough to decide on: a request waits for one sync."""
        return self.view is None or self.period(now) - self.view.period > 2

    @property
    def leading(self) -> bool:
        return self._leader_etag is not None

    async def refresh(self, now: float) -> None:
        """Sync now: publish the last period's row and read the summary together (a request
        finding no recent view waits for this). One at a time, and not again within half a
        period; storage errors propagate (GuardedStore has counted them)."""
        if self._task is None:
            if now - self._attempted < self.period_s / 2:
                return  # tried moments ago: decide on what is known (or the failure mode)
            self._attempted = now
            done = self.period(now) - 1
            self._task = asyncio.create_task(self._both(done))
        self._counters.incr("tally_waits")
        task = self._task
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._task is task:
                self._task = None

    async def _both(self, done: int) -> None:
        await self._learn(done, self._publish(done, force=True))

    async def tick(self, now: float) -> None:
        """When a period has ended: publish this instance's row at its write offset (before
        the aggregator reads at AGGREGATE_AT), aggregate when leading, and read the summary
        at the read offset (after it). Storage errors are counted by GuardedStore and left to
        the next tick."""
        done = self.period(now) - 1
        start = (done + 1) * self.period_s
        if self._task is not None:
            return
        if done > self._synced and now >= start + self._offset:
            await self._publish(done, force=False)
        if self.leading and done > self._aggregated and now >= start + AGGREGATE_AT * self.period_s:
            await self._aggregate(done, now)
        elif (self.leading and done == self._aggregated and now < self._young_until
              and now >= self._last_aggregate + YOUNG_S):
            await self._aggregate(done, now, again=True)
        active = self._published.get(done) or self._published.get(done - 1)
        if (done > self._learned and active and not self.leading
                and now >= start + self._read_offset):
            await self._learn(done)

    def _close_period(self, done: int) -> dict[str, float]:
        """This instance's published demand for `done`, computed once."""
        if done > self._synced:
            self._synced = done
            floors = {kid: 0.01 * rate * self.period_s for kid, rate in self._rates.items()}
            self._published[done] = tally.published(self._raw.pop(done, {}),
                                                    self._published.get(done - 1, {}), floors)
            for old in [p for p in self._raw if p < done]:
                del self._raw[old]
            before = self._sent_traffic.get(done - 1, 0.0) * tally.DECAY
            self._sent_traffic[done] = max(self._traffic.pop(done, 0.0), before)
            for old in [p for p in self._traffic if p < done]:
                del self._traffic[old]
            for old in [p for p in self._published if p < done - 4]:
                del self._published[old]
                self._sent_traffic.pop(old, None)
            live = set(self._published[done]).union(*self._raw.values())
            self._rates = {kid: rate for kid, rate in self._rates.items() if kid in live}
        return self._published.get(done, {})

    async def _publish(self, done: int, force: bool) -> None:
        body = self._close_period(done)
        if not body and not force:
            return
        fields, dropped = tally.instance_fields(done, self._clock.now(), body, self._rates,
                                                self._sent_traffic.get(done, 0.0))
        if dropped:
            self._counters.incr("tally_keys_dropped", dropped)
        self._counters.incr("tally_syncs")
        self._row_etag = await self._store.put(self._row, fields)
        self._written = {p for p in self._written if p >= done - 4} | {done}

    async def _learn(self, done: int, publish: Awaitable[None] | None = None) -> None:
        """Read the summary, alongside `publish` if given; take it over (after the publish, so
        the new aggregate counts this instance) when it is missing or stale."""
        self._learned = max(self._learned, done)
        if self.leading:
            if publish is not None:
                await publish
            if self.view is None or self.view.period < done - 1:  # its last aggregate failed
                await self._aggregate(done, self._clock.now())
            return
        if publish is None:
            found = await self._store.read(self._copy)
        else:
            found, _ = await asyncio.gather(self._store.read(self._copy), publish)
        fresh = self._adopt(found)
        if not fresh and self._copy != SUMMARY:
            # The copy lags or its writer failed: ask the summary itself.
            found = await self._store.read(SUMMARY)
            fresh = self._adopt(found)
        if not fresh:
            await self._take_over(done, found)
        elif self.view is None:  # claimed moments ago: its first aggregate is on its way
            await self._await_summary(done)

    def _adopt(self, found: StoredRow | None) -> bool:
        """Take the summary's view when it is newer; True when it is fresh (someone
        aggregates). A claim that has no aggregate yet (no instances) is not a view."""
        parsed = tally.parse_summary(found.fields) if found is not None else None
        if parsed is None:
            return False
        view, _by, at = parsed
        if view.instances > 0 and (self.view is None or view.period >= self.view.period):
            self.view = view
        return self._clock.now() - at <= TAKEOVER_PERIODS * self.period_s

    async def _take_over(self, done: int, found: StoredRow | None) -> None:
        """The summary is missing or stale: claim it with one conditional write (its view
        kept, `at` now), so that of all the instances noticing at once only one reads every
        group; the others wait for its summary."""
        now = self._clock.now()
        if found is not None and tally.parse_summary(found.fields) is not None:
            fields = {**found.fields, "by": self.me, "at": now}
        else:
            fields = tally.summary_fields(tally.View(done - 1, 0, frozenset(), {}), self.me, now)
        try:
            self._leader_etag = await self._store.write(
                SUMMARY, fields, found.etag if found is not None else None)
        except StoreConflict:
            await self._await_summary(done)
            return
        self._counters.incr("tally_takeovers")
        log.info("rate limiter: this instance now aggregates the tally")
        self._young_until = now + YOUNG_PERIODS * self.period_s
        await self._aggregate(done, now)

    async def _await_summary(self, done: int) -> None:
        """Another instance claimed the summary: read until its aggregate is there (a few
        short tries; a request waiting meanwhile is decided when they end)."""
        for _ in range(CLAIM_POLLS):
            await self._clock.sleep(CLAIM_POLL_S)
            self._adopt(await self._store.read(SUMMARY))
            if self.view is not None and self.view.period >= done - 1:
                return

    async def _aggregate(self, done: int, now: float, again: bool = False) -> None:
        """Sum the rows of period `done` into the summary, once per period (a failed attempt
        is retried by the next tick or request that finds the view stale). `again`: the same
        period once more, counting instances that wrote since (a fleet starting at once: the
        first aggregate counted only the aggregator, which then held the whole limit)."""
        async with self._aggregating:
            if done > self._aggregated or (again and done == self._aggregated):
                self._last_aggregate = now
                await self._aggregate_once(done, now)

    async def _aggregate_once(self, done: int, now: float) -> None:
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
        if self._groups > 1:  # one copy per group: readers never crowd one partition
            await asyncio.gather(*(self._store.put(copy_key(g), fields)
                                   for g in range(self._groups)))
        self._counters.incr("tally_aggregations")
        self._aggregated = done
        if view.instances > 0:  # nobody wrote (all idle): keep deciding on the last view
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
