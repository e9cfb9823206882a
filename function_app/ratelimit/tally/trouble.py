"""A tally chore that must not fail silently (publishing a row, aggregating the summary):
each failure is logged, counted and reported on /healthz until the chore succeeds again."""

from __future__ import annotations

import logging

from function_app.ratelimit.counters import Counters


class Trouble:
    """Consecutive failures of one chore, the last error (its type and message, which name
    no secret: store errors are already sanitised) and the period it was for."""

    def __init__(self, chore: str, counter: str, counters: Counters,
                 log: logging.Logger) -> None:
        self.chore, self._counter, self._counters, self._log = chore, counter, counters, log
        self.failures, self.error, self.period, self.at = 0, "", -1, 0.0

    def failed(self, exc: BaseException, period: int, now: float) -> None:
        self.failures += 1
        self.error, self.period, self.at = f"{type(exc).__name__}: {exc}"[:200], period, now
        self._counters.incr(self._counter)
        if self.failures & (self.failures - 1) == 0:  # 1st, 2nd, 4th, 8th...: never a flood
            self._log.warning("rate limiter: tally %s of period %d failed (%s), failure %d in "
                              "a row; retried on the next tick", self.chore, period, self.error,
                              self.failures)

    def ok(self) -> None:
        if self.failures > 1:  # a single failure retried at once is not worth a line
            self._log.warning("rate limiter: tally %s works again after %d failures",
                              self.chore, self.failures)
        self.failures = 0

    def report(self) -> dict[str, object]:
        """For /healthz: "ok" or "failing", with the last error while failing."""
        if not self.failures:
            return {"state": "ok"}
        return {"state": "failing", "consecutive_failures": self.failures,
                "last_error": self.error, "period": self.period, "at": round(self.at, 3)}
