"""The tally's storage side at one instance: when to publish its demand and learn the summary.

Per period, an instance with traffic makes two storage calls: at a random offset into the next
period it replaces its own row (publisher.py), and half a period later it reads the summary
(summary.py), which then describes the period just published; a leading instance aggregates
in between (aggregator.py). An instance with no recent view waits for one sync before
deciding. What it counts is in ledger.py, where its row lives in placement.py, the maths in
tally.py; docs/ratelimit-tally.md has the design and the bound.
"""

from __future__ import annotations

import asyncio
import logging
import random

from function_app.core.clock import Clock
from function_app.core.store_errors import StoreError, StoreUnavailable
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.guarded import GuardedStore
from function_app.ratelimit.tally import tally
from function_app.ratelimit.tally.aggregator import Aggregator
from function_app.ratelimit.tally.ledger import Ledger
from function_app.ratelimit.tally.placement import Placement
from function_app.ratelimit.tally.pots import Pots
from function_app.ratelimit.tally.publisher import Publisher
from function_app.ratelimit.tally.summary import Summary

log = logging.getLogger(__name__)
THROTTLED_PERIODS = 3  # after a refused call, sync sparingly this long (TallySync._throttled)
LIGHT_TRAFFIC = 40  # requests per period below which the summary is read every other period
CALM_PERIODS = 2  # after start, periods before a light instance may skip a row (_stands_in)


class TallySync:
    """One instance's schedule: its ledger (`ledger`), row, summary and aggregator role."""

    def __init__(self, store: GuardedStore, clock: Clock, period_s: float, groups: int,
                 instance: str, rng: random.Random, counters: Counters,
                 expected: int = 1) -> None:
        self._clock, self._counters, self.period_s = clock, counters, period_s
        self._expected = max(1, expected)  # RATE_LIMIT_EXPECTED_INSTANCES
        self.ledger = Ledger(period_s, tally.member_id(instance))
        self.pots = Pots(period_s, counters)  # budgets: demand, pots, unused remainders
        self._placement = Placement(tally.member_id(instance), groups)
        self._offset = rng.uniform(0.05, 0.35) * period_s  # write; the aggregator reads at 0.5
        self._read_offset = self._offset + 0.5 * period_s  # after the aggregator wrote
        self._aggregator = Aggregator(store, clock, period_s, groups, self.me,
                                      self._placement.row, counters)
        self._publisher = Publisher(store, clock, counters, self._placement)
        self._summary = Summary(store, clock, period_s, self._placement, self._aggregator,
                                self._publisher.moved)
        self._task: asyncio.Task | None = None
        self._attempted = float("-inf")
        self._rng = rng
        # ServerBusy (storage_backoff): until when this instance syncs sparingly, when it may
        # try a refused row again, and how often it tried the row of which period.
        self._throttled_until = self._retry_at = float("-inf")
        # No row is skipped (_stands_in) in the first periods: a fleet starting together is
        # refused by its one partition, and a skipped row then refused left instances out.
        self._calm_from = clock.now() + CALM_PERIODS * period_s
        self._tries = (-1, 0)

    @property
    def me(self) -> str:
        return self._placement.me

    @property
    def view(self) -> tally.View | None:
        return self._summary.view

    @property
    def leading(self) -> bool:
        return self._aggregator.leading

    def period(self, now: float) -> int:
        return self.ledger.period(now)

    def fleet(self) -> int:
        """How many instances share a limit while storage fails (fail-open): the fleet the
        last summary counted, else E. With E, 100 instances and E = 4 admitted 25 times a
        limit under ServerBusy; a fleet smaller than E is not starved either."""
        if self.view is not None and self.view.instances > 0:
            return self.view.instances
        return self._expected

    def unsynced(self, now: float) -> bool:
        """No view and no sync tried within a period: only then is failing storage worth a
        probe (a read that tells nothing else). With traffic, requests sync every half period
        and are the probe: under 50 % ServerBusy the probes of instances still without a
        view were 30 % of all storage operations."""
        return self.view is None and now - self._attempted > self.period_s

    def usable(self, now: float) -> bool:
        return self.view is not None and self.period(now) - self.view.period <= tally.STALE_PERIODS

    def stale(self, now: float) -> bool:
        """No view recent enough to decide on, and none read lately: a request waits for one
        sync. A clock ahead reads the summary before the aggregator wrote the newest, so its
        view is a period older; it read what there was, and syncing again on a request found
        nothing newer (20 % more storage calls at 1,000 instances, a fifth 2 s ahead)."""
        if self.view is None:
            return True
        # Throttled or light, a view is read every other period (_worth_reading): three old
        # is expected then, and a sync on a request would spend what that saves.
        sparing = now < self._throttled_until or self._light(self.ledger.closed)
        most = tally.STALE_PERIODS - 1 if sparing else 2
        return (self.period(now) - self.view.period > most
                and now - self._summary.read_at > 1.5 * self.period_s)

    async def refresh(self, now: float) -> None:
        """Sync now: publish the last period's row and read the summary together (a request
        finding no recent view waits for this). One at a time, and not again within half a
        period (a whole one while throttled); storage errors propagate (GuardedStore has
        counted them)."""
        if self._task is None:
            # Not again within half a period, or a whole one while storage is throttling
            # (each sync is a row and a read, and refused ones are operations too).
            gap = self.period_s if now < self._throttled_until else self.period_s / 2
            if now - self._attempted < gap:
                return  # tried moments ago: decide on what is known (or the failure mode)
            self._attempted = now
            done = self.period(now) - 1
            self._task = asyncio.create_task(self._both(done))
        self._counters.incr("tally_waits")
        task = self._task
        try:
            await asyncio.shield(task)
        except StoreUnavailable:
            self._throttled(self._clock.now())
            raise
        finally:
            if task.done() and self._task is task:
                self._task = None

    async def _both(self, done: int) -> None:
        """Publish `done` unless storage already has it (a view gone stale under ServerBusy
        wrote the same row again: a third of the puts at 50 %), and read the summary."""
        if self.ledger.has_written(done):
            await self._summary.learn(done)
        else:
            await self._summary.learn(done, self._publish(done, force=True))

    async def tick(self, now: float) -> None:
        """When a period has ended: publish this instance's row at its write offset (before
        the aggregator reads at AGGREGATE_AT), aggregate when leading, and read the summary
        at the read offset (after it). Storage errors are counted by GuardedStore and left to
        the next tick."""
        done = self.period(now) - 1
        start = (done + 1) * self.period_s
        if self._task is not None:
            return
        try:
            if (done > self.ledger.closed or self._retry(done, now)) \
                    and now >= start + self._offset:
                self._tries = (done, self._tries[1] + 1 if self._tries[0] == done else 1)
                await self._publish(done, force=False)
            self._summary.take(await self._aggregator.tick(done, now))
            if (done > self._summary.learned and not self.leading
                    and (self.ledger.active(done) or self.pots.active(done))
                    and now >= start + self._read_offset and self._worth_reading(done, now)):
                await self._summary.learn(done)
        except StoreUnavailable:
            self._throttled(now)
            raise

    def _retry(self, done: int, now: float) -> bool:
        """The row of `done` was refused: try it again, once, after a jittered pause, only
        when the row of the period before is missing too. Otherwise that row stands in for
        it, with its figures (tally.aggregate: `behind`), and the next period's row follows:
        a refusal costs one operation, not two (rows were most of the operations under 50 %
        ServerBusy). Retrying on every tick had made two or more attempts per row."""
        return (self._publisher.unsent == done and now >= self._retry_at
                and self._tries == (done, 1) and not self.ledger.has_written(done - 1))

    def _throttled(self, now: float) -> None:
        """A tally call was refused (503 ServerBusy or no answer): back off as Azure asks,
        syncing sparingly for a few periods (`_worth_reading`), and pause before the one
        retry of a row, with jitter so that a fleet refused together does not retry together."""
        self._throttled_until = now + THROTTLED_PERIODS * self.period_s
        self._retry_at = now + self._rng.uniform(0.05, 0.15) * self.period_s

    def _light(self, done: int) -> bool:
        """This instance decided fewer than LIGHT_TRAFFIC requests in period `done`: a read
        per period would cost it more than 1 / LIGHT_TRAFFIC operations per request, and its
        view, used for few requests, may be a period older (under attack, 12,000 fresh ids a
        period left honest traffic 0.85 of exact and 0.054 operations per admitted request)."""
        return self.ledger.closed >= done and self.ledger.close(done).traffic < LIGHT_TRAFFIC

    def _worth_reading(self, done: int, now: float) -> bool:
        """Whether to read the summary of `done`. Light (`_light`) or throttled: not when
        this instance's row of `done` was refused (the summary sums its row of the period
        before, as the view it holds may: little to learn) nor when the view is of the period
        before (it stays usable for STALE_PERIODS): every other period at most, which halves
        the reads (under ServerBusy each costs about two attempts)."""
        if now >= self._throttled_until and not self._light(done):
            return True
        if self._publisher.unsent == done:
            return False
        return self.view is None or self.view.period < done - 1

    def _stands_in(self, done: int, traffic: float, now: float) -> bool:
        """Skip the row of `done`: a light instance (fewer than LIGHT_TRAFFIC requests in it)
        that wrote the row of the period before and will not read this period's summary
        (_worth_reading: it reads every other one). The aggregator sums that row as `behind`
        and this instance takes its own figures from it (Ledger.summed), so a view's shares
        still sum to at most one; its budget demand takes pots only in the summaries it reads
        anyway (their grants count the demand of such rows: potgrants._aside). Rows of every
        period were more than half the operations at 1,000 instances in the budgets scenario.
        Never while storage refuses (a skipped row then a refused one left the instance out
        of N: 50 % ServerBusy fell to the failure mode) nor in its first CALM_PERIODS."""
        return (traffic < LIGHT_TRAFFIC and not self.leading and self.view is not None
                and now >= max(self._throttled_until, self._calm_from)
                and self.ledger.has_written(done - 1)
                and not self._worth_reading(done, now))

    async def _publish(self, done: int, force: bool) -> None:
        """Write this instance's row for `done` (nothing without demand unless `force`d). A
        failure propagates; `_retry` says whether the row is tried again in its period."""
        counted = self.ledger.close(done)
        if not force and self._stands_in(done, counted.traffic, self._clock.now()):
            self._counters.incr("tally_rows_skipped")
            return  # its budget remainders wait in Pots for the next row
        budgets = self.pots.close(done)
        if not counted.demand and not budgets and not force:
            return
        # Whether it will read the summary of `done`: only then is its budget demand granted.
        reads = self.pots.reading(done, force or self.leading
                                  or self._worth_reading(done, self._clock.now()))
        await self._publisher.publish(done, counted, self.ledger.rates, budgets, reads)
        self.ledger.written(done)

    def report(self, now: float) -> dict[str, object]:
        """For /healthz: the view's age in periods, whether this instance aggregates, and
        the state of its publishing and (when leading) aggregating."""
        age = self.period(now) - self.view.period if self.view is not None else None
        return {"view_age_periods": age, "aggregating": self.leading,
                "publish": self._publisher.trouble.report(),
                "aggregate": self._aggregator.trouble.report()}

    async def close(self) -> None:
        """Leave: resign if aggregating, and delete this instance's row (best effort)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            if self.leading:
                await self._aggregator.resign(self.view)
            await self._publisher.delete()
        except StoreError as exc:
            log.info("rate limiter: tally cleanup skipped (%s)", type(exc).__name__)
