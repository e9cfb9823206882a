"""Writing this instance's tally row: one replace per period (no ETag: only this instance
writes there). A failure is logged, counted and reported on /healthz (trouble.py) and the
period is kept for a retry until a newer period's row supersedes it."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from function_app.core.clock import Clock
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.guarded import GuardedStore
from function_app.ratelimit.tally import rows as tally_rows
from function_app.ratelimit.tally.ledger import Counted
from function_app.ratelimit.tally.placement import Placement
from function_app.ratelimit.tally.trouble import Trouble

log = logging.getLogger(__name__)


class Publisher:
    """This instance's row in storage: written by `publish`, removed by `delete` on leaving."""

    def __init__(self, store: GuardedStore, clock: Clock, counters: Counters,
                 placement: Placement) -> None:
        self._store, self._clock, self._counters = store, clock, counters
        self._placement = placement
        self._etag: str | None = None  # of the row last written where the row lives now
        self.unsent: int | None = None  # a period whose row failed to go out: retried
        self.trouble = Trouble("publish", "tally_publish_failures", counters, log)

    async def publish(self, done: int, counted: Counted, rates: Mapping[str, float],
                      budgets: Mapping[str, list[float]] | None = None,
                      reads: bool = False) -> None:
        """Write the row for period `done` (with its budget part: tally/pots.py); a failure
        is recorded (see the module) and propagates."""
        try:
            fields, dropped = tally_rows.instance_fields(done, self._clock.now(), counted.demand,
                                                         rates, counted.traffic, budgets,
                                                         reads)
            if dropped:
                self._counters.incr("tally_keys_dropped", dropped)
            self._counters.incr("tally_syncs")
            self._etag = await self._store.put(self._placement.row, fields)
        except Exception as exc:
            self.unsent = done
            self.trouble.failed(exc, done, self._clock.now())
            raise
        self.unsent = None
        self.trouble.ok()

    def moved(self) -> None:
        """The row moved to another group: the one written before is the aggregator's to
        delete once it is old."""
        self._etag = None

    async def delete(self) -> None:
        """Remove the row this instance wrote (leaving); nothing when it wrote none here."""
        if self._etag is not None:
            await self._store.delete(self._placement.row, self._etag)
