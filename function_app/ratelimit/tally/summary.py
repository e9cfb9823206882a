"""This instance's view of the fleet in tally mode: it reads the summary (its group's copy,
else the summary itself) and adopts a newer view; a summary missing or older than
TAKEOVER_PERIODS is claimed by whichever instance notices first (aggregator.py), and the
others wait a few short polls for that instance's first aggregate."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from function_app.core.clock import Clock
from function_app.ratelimit.guarded import GuardedStore
from function_app.ratelimit.store import StoredRow
from function_app.ratelimit.tally import rows as tally_rows
from function_app.ratelimit.tally import tally
from function_app.ratelimit.tally.aggregator import SUMMARY, Aggregator
from function_app.ratelimit.tally.placement import Placement

TAKEOVER_PERIODS = 3
CLAIM_POLLS, CLAIM_POLL_S = 20, 0.05  # waiting for another instance's first aggregate


class Summary:
    """The view this instance decides on (`view`), and how it learns a new one (`learn`).
    A view that counts a fleet of another size moves the placement (`moved` is told)."""

    def __init__(self, store: GuardedStore, clock: Clock, period_s: float,
                 placement: Placement, aggregator: Aggregator,
                 moved: Callable[[], None]) -> None:
        self._store, self._clock, self._period_s = store, clock, period_s
        self._placement, self._aggregator, self._moved = placement, aggregator, moved
        self.view: tally.View | None = None
        self.learned = -1  # the last period after whose end the summary was read
        self.read_at = float("-inf")  # when a summary was last read (or aggregated here)

    async def learn(self, done: int, publish: Awaitable[None] | None = None) -> None:
        """Read the summary, alongside `publish` if given; take it over (after the publish, so
        the new aggregate counts this instance) when it is missing or stale."""
        self.learned = max(self.learned, done)
        if self._aggregator.leading:
            if publish is not None:
                await publish
            if self.view is None or self.view.period < done - 1:  # its last aggregate failed
                self.take(await self._aggregator.aggregate(done, self._clock.now()))
            return
        if publish is None:
            found = await self._store.read(self._placement.copy)
        else:
            found, _ = await asyncio.gather(self._store.read(self._placement.copy), publish)
        fresh = self._adopt(found)
        if not fresh and self._placement.copy != SUMMARY:
            # The copy lags or its writer failed: ask the summary itself.
            found = await self._store.read(SUMMARY)
            fresh = self._adopt(found)
        if not fresh:
            await self._take_over(done, found)
        elif self.view is None:  # claimed moments ago: its first aggregate is on its way
            await self._await_summary(done)

    def take(self, view: tally.View | None) -> None:
        """A view this instance aggregated itself (None: keep the one it has)."""
        if view is not None:
            self.view, self.read_at = view, self._clock.now()
            self._regroup()

    def _adopt(self, found: StoredRow | None) -> bool:
        """Take the summary's view when it is newer; True when it is fresh (someone
        aggregates). A claim that has no aggregate yet (no instances) is not a view."""
        parsed = tally_rows.parse_summary(found.fields) if found is not None else None
        if parsed is None:
            return False
        view, _by, at = parsed
        self.read_at = self._clock.now()
        if view.instances > 0 and (self.view is None or view.period >= self.view.period):
            self.view = view
            self._regroup()
        return self._clock.now() - at <= TAKEOVER_PERIODS * self._period_s

    def _regroup(self) -> None:
        """Partitions follow the fleet the view counted (placement.Placement.follow)."""
        if self.view is not None and self._placement.follow(self.view.instances):
            self._moved()
            self._aggregator.regroup(self._placement.groups, self._placement.row)

    async def _take_over(self, done: int, found: StoredRow | None) -> None:
        """The summary is missing or stale: claim it, so that of all the instances noticing at
        once only one reads every group; the others wait for its summary."""
        if await self._aggregator.claim(done, found):
            self.take(await self._aggregator.aggregate(done, self._clock.now()))
        else:
            await self._await_summary(done)

    async def _await_summary(self, done: int) -> None:
        """Another instance claimed the summary: read until its aggregate is there (a few
        short tries; a request waiting meanwhile is decided when they end)."""
        for _ in range(CLAIM_POLLS):
            await self._clock.sleep(CLAIM_POLL_S)
            self._adopt(await self._store.read(SUMMARY))
            if self.view is not None and self.view.period >= done - 1:
                return
