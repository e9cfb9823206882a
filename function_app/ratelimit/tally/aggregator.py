"""The tally's aggregator role: the one instance that sums every instance row into the summary.

Elected by a conditional write on the summary row (`claim`): of all the instances noticing a
missing or stale summary at once, one wins; the others read its result. Each period, at
AGGREGATE_AT after its end, it reads every group partition (one query each), writes the summary
under the ETag it last wrote (a conflict means another instance took over: it steps down) and
puts a copy in one partition per group, where that group's instances read it. After taking over
it counts again every YOUNG_S for YOUNG_PERIODS, so instances starting together are counted
within a second. Rows of crashed instances (GONE_PERIODS old) are deleted. With no instance row
for IDLE_PERIODS it resigns, so an idle fleet makes no storage calls.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import replace

from function_app.core.clock import Clock
from function_app.core.store_errors import StoreConflict
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.guarded import GuardedStore
from function_app.ratelimit.store import RowKey, StoredRow
from function_app.ratelimit.tally import potgrants, tally
from function_app.ratelimit.tally import rows as tally_rows
from function_app.ratelimit.tally.trouble import Trouble

log = logging.getLogger(__name__)
SUMMARY = RowKey("_tally", "summary")
IDLE_PERIODS = 3
GONE_PERIODS = 20  # an instance row this old belongs to a crashed instance: delete it
AGGREGATE_AT = 0.5  # fraction of a period after its end when the aggregator reads the rows
YOUNG_S, YOUNG_PERIODS = 0.5, 2
RETRY_S = 0.5  # after a refused aggregate, before trying again (a partition's 1 s window)
OFFLOAD = True  # sum rows in a worker thread (the simulator turns it off: virtual time)


async def _now(value: object) -> object:
    return value


def copy_key(group: int) -> RowKey:
    """Where the instances of one group read the summary (when there is more than one group)."""
    return RowKey(f"_tally.s{group}", "summary")


def group_key(group: int) -> str:
    """The partition holding one group's instance rows."""
    return f"_tally.g{group}"


class Aggregator:
    """This instance's aggregator role: idle until `claim` wins, then `tick` each period."""

    def __init__(self, store: GuardedStore, clock: Clock, period_s: float, groups: int,
                 me: str, own_row: RowKey, counters: Counters) -> None:
        self._store, self._clock, self._counters = store, clock, counters
        self._period_s, self._groups, self._me, self._own_row = period_s, groups, me, own_row
        self._etag: str | None = None  # the summary's, while this instance aggregates
        self.aggregated, self._idle = -1, 0
        self._lock = asyncio.Lock()
        self._young_until = self._last = float("-inf")
        self._reading, self._moved = groups, -1  # groups read: more for a while after regroup
        self.trouble = Trouble("aggregate", "tally_aggregate_failures", counters, log)
        self._retry_at = float("-inf")
        self._read_for, self._read = -1, {}  # the period whose groups were read, by group
        self._earlier: dict[int, list[StoredRow]] = {}  # groups read for the period before
        self._stood: set[int] = set()  # groups of `_read` that are `_earlier`'s rows
        self._copies: tuple[dict, set[int]] = ({}, set())  # summary fields, groups owed a copy

    def regroup(self, groups: int, own_row: RowKey) -> None:
        """The fleet's partitions changed (placement.Placement.follow): read the groups of both
        counts for a while, so rows not moved yet still count."""
        self._reading = max(self._groups, groups)
        self._groups, self._own_row = groups, own_row
        self._moved = self.aggregated

    @property
    def leading(self) -> bool:
        return self._etag is not None

    async def claim(self, done: int, found: StoredRow | None) -> bool:
        """Take the summary over with one conditional write (its view kept, `at` now)."""
        now = self._clock.now()
        if found is not None and tally_rows.parse_summary(found.fields) is not None:
            fields = {**found.fields, "by": self._me, "at": now}
        else:
            fields = tally_rows.summary_fields(tally.View(done - 1, 0, frozenset(), {}), self._me,
                                          now)
        try:
            self._etag = await self._store.write(
                SUMMARY, fields, found.etag if found is not None else None)
        except StoreConflict:
            return False
        self._counters.incr("tally_takeovers")
        log.info("rate limiter: this instance now aggregates the tally")
        self._young_until = now + YOUNG_PERIODS * self._period_s
        return True

    async def tick(self, done: int, now: float) -> tally.View | None:
        """Aggregate `done` when due, or count it again while young; the new view, if any."""
        start = (done + 1) * self._period_s
        if not self.leading or now < self._retry_at:
            return None
        if self._copies[1]:  # until every copy is in (its group's readers read it first)
            await self._put_copies()
        if done > self.aggregated and now >= start + AGGREGATE_AT * self._period_s:
            return await self.aggregate(done, now)
        if done == self.aggregated and self._young_until > now >= self._last + YOUNG_S:
            return await self.aggregate(done, now, again=True)
        return None

    async def aggregate(self, done: int, now: float, again: bool = False) -> tally.View | None:
        """Sum the rows of period `done` into the summary, once per period (a failed attempt
        is retried by the next tick or request that finds the view stale). `again`: the same
        period once more, counting instances that wrote since. The view written, or None (not
        due, lost the summary, or nobody wrote: keep deciding on the last view)."""
        async with self._lock:
            if done > self.aggregated or (again and done == self.aggregated):
                self._last = now
                try:
                    view = await self._once(done, now, again)
                except Exception as exc:  # logged, counted, on /healthz; retried RETRY_S on
                    # (a refused query of 100 rows retried on the next tick, in the same
                    # second, added them again to a partition already over its target)
                    self._retry_at = now + RETRY_S
                    self.trouble.failed(exc, done, now)
                    raise
                self.trouble.ok()
                return view
        return None

    async def _once(self, done: int, now: float, again: bool) -> tally.View | None:
        if done > self._moved + tally.STALE_PERIODS:
            self._reading = self._groups  # every instance has moved by now
        stored = await self._read_groups(done, again)
        summed = functools.partial(self._sum, stored, done, now)
        # Decoding every instance row (megabytes of JSON with many keys) and summing them
        # would stall every request on this instance's event loop: a worker thread does it.
        rows, view, fields, gone = await (asyncio.to_thread(summed) if OFFLOAD else
                                          _now(summed()))
        for key, etag in gone:
            await self._forget(key, etag)
        self._idle = 0 if view.members - view.behind else self._idle + 1  # none wrote in it
        if not again:  # a re-count grants nothing: the budget rows already record `done`
            pots, excluded = await potgrants.grant(self._store, rows, view, now,
                                                   self._counters)
            if pots:
                view = replace(view, pots=pots, excluded=excluded)
                fields = {**fields, **tally_rows.pot_fields(pots, excluded)}
        try:
            self._etag = await self._store.write(SUMMARY, fields, self._etag or None)
        except StoreConflict:
            self._etag = None  # another instance aggregates now
            return None
        self._copies = (fields, set(range(self._groups)) if self._groups > 1 else set())
        await self._put_copies()
        self._counters.incr("tally_aggregations")
        self.aggregated = done
        if self._idle >= IDLE_PERIODS:
            await self.resign(view)
        return view if view.instances > 0 else None

    async def _read_groups(self, done: int, again: bool) -> list[StoredRow]:
        """Every group's rows for `done`: one query per group, and after a failure only the
        groups not read yet (under 50 % ServerBusy all ten queries of 1,000 instances
        succeeded together about once in a thousand tries, and each retry read them all
        again: a hot partition of 8,452 entities/s). A group refused that was read for the
        period before stands in with those rows (tally.aggregate counts them as `behind`):
        retried 0.5 s apart, the ten queries and the summary's write rarely all succeeded
        within the period, and the fleet ran on stale views, then on the failure mode. Any
        other failure propagates once the groups read are kept."""
        if again or self._read_for != done:
            if self._read_for != done:  # only what was read then, for the period before
                before = self._read if self._read_for == done - 1 else {}
                self._earlier = {g: rows for g, rows in before.items() if g not in self._stood}
            self._read_for, self._read, self._stood = done, {}, set()
        wanted = [g for g in range(self._reading) if g not in self._read]
        results = await asyncio.gather(*(self._store.query(group_key(g)) for g in wanted),
                                       return_exceptions=True)
        failed = None
        for group, result in zip(wanted, results, strict=True):
            if not isinstance(result, BaseException):
                self._read[group] = result
            elif group in self._earlier:
                self._read[group] = self._earlier[group]
                self._stood.add(group)
            else:
                failed = failed or result
        if failed is not None:
            raise failed
        return [row for g in range(self._reading) for row in self._read[g]]

    async def _put_copies(self) -> None:
        """Put the last summary in each group's partition not holding it yet (one copy per
        group: readers never crowd one partition). A copy refused is put again by the next
        tick rather than aggregating again; its readers read the summary meanwhile."""
        fields, due = self._copies
        if not due:
            return
        wanted = sorted(due)
        results = await asyncio.gather(*(self._store.put(copy_key(g), fields) for g in wanted),
                                       return_exceptions=True)
        for group, result in zip(wanted, results, strict=True):
            if not isinstance(result, BaseException):
                due.discard(group)

    def _sum(self, stored: list[StoredRow], done: int, now: float) -> tuple:
        """Pure work on the rows read: (rows parsed, the view, the summary's fields, rows of
        crashed instances to delete). Touches no state, so it may run in a worker thread."""
        rows, gone, oldest = [], [], now - GONE_PERIODS * self._period_s
        for row in stored:
            parsed = tally_rows.parse_instance(row.key.row, row.fields)
            if parsed is not None and parsed.at >= oldest:
                rows.append(parsed)
            elif row.key != self._own_row:
                gone.append((row.key, row.etag))
        view = tally.aggregate(rows, done, self._period_s)
        return rows, view, tally_rows.summary_fields(view, self._me, self._clock.now()), gone

    async def _forget(self, key: RowKey, etag: str) -> None:
        try:
            await self._store.delete(key, etag)
        except StoreConflict:
            pass  # it wrote again: not gone after all

    async def resign(self, view: tally.View | None) -> None:
        """Stop aggregating; an old `at` lets the next active instance take over at once."""
        if self._etag:
            fields = tally_rows.summary_fields(view or tally.View(-1, 0, frozenset(), {}),
                                          self._me, 0.0)
            try:
                await self._store.write(SUMMARY, fields, self._etag)
            except StoreConflict:
                pass
        self._etag = None
