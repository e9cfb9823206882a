"""The tally's storage side at one instance: publish its demand, learn the summary.

Per period, an instance with traffic makes two storage calls: at a random offset into the next
period it replaces its own row (no ETag: only it writes there), and half a period later it reads
the summary (its group's copy), which then describes the period just published. A summary
missing or older than TAKEOVER_PERIODS is claimed by whichever instance notices first, which
then aggregates (tally_aggregator.py); an instance with no recent view waits for one sync before
deciding. The maths is in tally.py.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable
from dataclasses import dataclass, field

from function_app.core.clock import Clock
from function_app.core.store_errors import StoreError
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.guarded import GuardedStore
from function_app.ratelimit.store import RowKey, StoredRow
from function_app.ratelimit.tally import rows as tally_rows
from function_app.ratelimit.tally import tally
from function_app.ratelimit.tally.aggregator import SUMMARY, Aggregator, copy_key, group_key
from function_app.ratelimit.tally.trouble import Trouble

log = logging.getLogger(__name__)
GROUP_SIZE = 100  # instances per group partition: ~100 writes + 100 rows read per period
TAKEOVER_PERIODS = 3
CLAIM_POLLS, CLAIM_POLL_S = 20, 0.05  # waiting for another instance's first aggregate


@dataclass
class Counted:
    """One period at this instance: demand per key (cost asked) and requests decided."""

    demand: dict[str, float] = field(default_factory=dict)
    traffic: float = 0.0


NOTHING = Counted()  # read-only: a period with nothing counted


def group_count(expected_instances: int) -> int:
    return max(1, min(64, math.ceil(expected_instances / GROUP_SIZE)))


class TallySync:
    """One instance's demand ledger and its view of everyone's (see the module docstring)."""

    def __init__(self, store: GuardedStore, clock: Clock, period_s: float, groups: int,
                 instance: str, rng: random.Random, counters: Counters,
                 expected: int = 1) -> None:
        self._store, self._clock, self._counters = store, clock, counters
        self._expected = max(1, expected)  # RATE_LIMIT_EXPECTED_INSTANCES
        self.period_s, self._groups, self._least_groups = period_s, groups, groups
        self.me = tally.member_id(instance)
        self._row, self._copy = self._where(groups)
        self._offset = rng.uniform(0.05, 0.35) * period_s  # write; the aggregator reads at 0.5
        self._read_offset = self._offset + 0.5 * period_s  # after the aggregator wrote
        self.view: tally.View | None = None
        self._raw: dict[int, Counted] = {}  # per period, as counted
        self._published: dict[int, Counted] = {}  # per period, as published (smoothed)
        self._rates: dict[str, float] = {}
        self._synced = -1  # the last period whose row was written (or found empty)
        self._learned = -1  # the last period after whose end the summary was read
        self._read_at = float("-inf")  # when a summary was last read (or aggregated here)
        self._written: set[int] = set()  # recent periods whose row storage accepted
        self._aggregator = Aggregator(store, clock, period_s, groups, self.me, self._row,
                                      counters)
        self._row_etag: str | None = None
        self._task: asyncio.Task | None = None
        self._attempted = float("-inf")
        self.publishing = Trouble("publish", "tally_publish_failures", counters, log)
        self._unsent: int | None = None  # a period whose row failed to go out: retried

    def _where(self, groups: int) -> tuple[RowKey, RowKey]:
        """This instance's row and the summary copy it reads, with `groups` partitions."""
        group = int(self.me, 16) % groups
        return RowKey(group_key(group), self.me), copy_key(group) if groups > 1 else SUMMARY

    def _regroup(self) -> None:
        """Partitions follow the fleet the summary counted, not only E: a group per
        GROUP_SIZE instances (fewer only when the fleet is a third smaller: no flapping).
        The row moves; the old one stops counting within two periods (tally.aggregate) and
        the aggregator deletes it when it is GONE_PERIODS old."""
        if self.view is None:
            return
        grow = group_count(self.view.instances)
        shrink = group_count(int(self.view.instances * 1.5))
        wanted = max(self._least_groups, grow if grow > self._groups else
                     min(self._groups, shrink))
        if wanted != self._groups:
            self._groups = wanted
            self._row, self._copy = self._where(wanted)
            self._row_etag = None
            self._aggregator.regroup(wanted, self._row)

    def period(self, now: float) -> int:
        return math.floor(now / self.period_s)

    def record(self, kid: str, cost: float, rate: float, now: float) -> None:
        """Demand seen on a key (admitted, or asked of the scope that denied it)."""
        raw = self._counting(now).demand
        raw[kid] = max(0.0, raw.get(kid, 0.0) + cost)
        self._rates[kid] = rate

    def request(self, now: float) -> None:
        """One request decided here (any keys): the instance's traffic, which weighs its part
        of the limits' unused shares (tally.weight)."""
        self._counting(now).traffic += 1

    def _counting(self, now: float) -> Counted:
        """The current period's counts (made on its first request, not on every one)."""
        period = self.period(now)
        counted = self._raw.get(period)
        if counted is None:
            counted = self._raw[period] = Counted()
        return counted

    def own(self, kid: str) -> float:
        """This instance's published demand on a key for the current view's period."""
        return self._in_view().demand.get(kid, 0.0)

    def counted(self) -> bool:
        """The current view's N counts this instance (its row of the period before is in)."""
        return self.view is not None and self.view.period - 1 in self._written

    def own_traffic(self) -> float:
        """This instance's published request count for the current view's period."""
        return self._in_view().traffic

    def _in_view(self) -> Counted:
        """What this instance published for the view's period; with a clock behind, the
        summary counted its row of the period before (tally.aggregate): that one."""
        if self.view is None:
            return NOTHING
        published = self._published
        return published.get(self.view.period) or published.get(self.view.period - 1, NOTHING)

    def fleet(self) -> int:
        """How many instances share a limit while storage fails (fail-open): the fleet the
        last summary counted, else E. With E, 100 instances and E = 4 admitted 25 times a
        limit under ServerBusy; a fleet smaller than E is not starved either."""
        if self.view is not None and self.view.instances > 0:
            return self.view.instances
        return self._expected

    def usable(self, now: float) -> bool:
        return self.view is not None and self.period(now) - self.view.period <= tally.STALE_PERIODS

    def stale(self, now: float) -> bool:
        """No view recent enough to decide on, and none read lately: a request waits for one
        sync. A clock ahead reads the summary before the aggregator wrote the newest, so its
        view is a period older; it read what there was, and syncing again on a request found
        nothing newer (20 % more storage calls at 1,000 instances, a fifth 2 s ahead)."""
        return self.view is None or (self.period(now) - self.view.period > 2
                                     and now - self._read_at > 1.5 * self.period_s)

    @property
    def leading(self) -> bool:
        return self._aggregator.leading

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
        """Publish `done` unless storage already has it (a view gone stale under ServerBusy
        wrote the same row again: a third of the puts at 50 %), and read the summary."""
        if done in self._written:
            await self._learn(done)
        else:
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
        if (done > self._synced or self._unsent == done) and now >= start + self._offset:
            await self._publish(done, force=False)
        self._take(await self._aggregator.tick(done, now))
        active = any(self._published.get(p, NOTHING).demand for p in (done, done - 1))
        if (done > self._learned and active and not self.leading
                and now >= start + self._read_offset):
            await self._learn(done)

    def _close_period(self, done: int) -> Counted:
        """This instance's published figures for `done`, computed once: demand and traffic
        each as counted, or half the period before's if more."""
        if done > self._synced:
            self._synced = done
            floors = {kid: 0.01 * rate * self.period_s for kid, rate in self._rates.items()}
            raw, before = self._raw.pop(done, NOTHING), self._published.get(done - 1, NOTHING)
            self._published[done] = Counted(
                tally.published(raw.demand, before.demand, floors),
                max(raw.traffic, before.traffic * tally.DECAY))
            self._raw = {p: c for p, c in self._raw.items() if p > done}
            self._published = {p: c for p, c in self._published.items() if p >= done - 4}
            live = set(self._published[done].demand).union(
                *(c.demand for c in self._raw.values()))
            self._rates = {kid: rate for kid, rate in self._rates.items() if kid in live}
        return self._published.get(done, NOTHING)

    async def _publish(self, done: int, force: bool) -> None:
        """Write this instance's row for `done`. A failure is logged, counted, reported on
        /healthz and retried by the next tick while `done` is the last period (a newer
        period's row supersedes it); it then propagates."""
        counted = self._close_period(done)
        if not counted.demand and not force:
            return
        try:
            fields, dropped = tally_rows.instance_fields(done, self._clock.now(), counted.demand,
                                                    self._rates, counted.traffic)
            if dropped:
                self._counters.incr("tally_keys_dropped", dropped)
            self._counters.incr("tally_syncs")
            self._row_etag = await self._store.put(self._row, fields)
        except Exception as exc:
            self._unsent = done
            self.publishing.failed(exc, done, self._clock.now())
            raise
        self._unsent = None
        self.publishing.ok()
        self._written = {p for p in self._written if p >= done - 4} | {done}

    def report(self, now: float) -> dict[str, object]:
        """For /healthz: the view's age in periods, whether this instance aggregates, and
        the state of its publishing and (when leading) aggregating."""
        age = self.period(now) - self.view.period if self.view is not None else None
        return {"view_age_periods": age, "aggregating": self.leading,
                "publish": self.publishing.report(),
                "aggregate": self._aggregator.trouble.report()}

    async def _learn(self, done: int, publish: Awaitable[None] | None = None) -> None:
        """Read the summary, alongside `publish` if given; take it over (after the publish, so
        the new aggregate counts this instance) when it is missing or stale."""
        self._learned = max(self._learned, done)
        if self.leading:
            if publish is not None:
                await publish
            if self.view is None or self.view.period < done - 1:  # its last aggregate failed
                self._take(await self._aggregator.aggregate(done, self._clock.now()))
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
        parsed = tally_rows.parse_summary(found.fields) if found is not None else None
        if parsed is None:
            return False
        view, _by, at = parsed
        self._read_at = self._clock.now()
        if view.instances > 0 and (self.view is None or view.period >= self.view.period):
            self.view = view
            self._regroup()
        return self._clock.now() - at <= TAKEOVER_PERIODS * self.period_s

    async def _take_over(self, done: int, found: StoredRow | None) -> None:
        """The summary is missing or stale: claim it, so that of all the instances noticing at
        once only one reads every group; the others wait for its summary."""
        if await self._aggregator.claim(done, found):
            self._take(await self._aggregator.aggregate(done, self._clock.now()))
        else:
            await self._await_summary(done)

    def _take(self, view: tally.View | None) -> None:
        """A view this instance aggregated itself (None: keep the one it has)."""
        if view is not None:
            self.view, self._read_at = view, self._clock.now()
            self._regroup()

    async def _await_summary(self, done: int) -> None:
        """Another instance claimed the summary: read until its aggregate is there (a few
        short tries; a request waiting meanwhile is decided when they end)."""
        for _ in range(CLAIM_POLLS):
            await self._clock.sleep(CLAIM_POLL_S)
            self._adopt(await self._store.read(SUMMARY))
            if self.view is not None and self.view.period >= done - 1:
                return

    async def close(self) -> None:
        """Leave: resign if aggregating, and delete this instance's row (best effort)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            if self.leading:
                await self._aggregator.resign(self.view)
            if self._row_etag is not None:
                await self._store.delete(self._row, self._row_etag)
        except StoreError as exc:
            log.info("rate limiter: tally cleanup skipped (%s)", type(exc).__name__)
