"""The circuit breaker of one backend, as a state machine driven by results and time.

    closed --(N consecutive failures, or failure rate >= R over the window)--> open
    open   --(open_s elapsed)--> half-open: one probe request at a time
    half-open --(probe succeeds)--> closed;  --(probe fails)--> open again

`record` returns the new state on a transition (the only moment the shared row is written) and
None otherwise. `adopt` takes a state another instance wrote, when it is newer than ours.
Times are wall-clock seconds (`Clock.now()`), since states are compared across instances.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ..core.fields import from_setting

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
HELD = "429"  # SharedState.cause of an open state that waits out a backend's Retry-After


@dataclass(frozen=True)
class BreakerConfig:
    """The BREAKER_* settings (settings/specs.py says what each means)."""

    failures: int = from_setting("breaker_failures", 5)  # consecutive failures that open it
    # ... or this share of failures over the window, once it holds min_requests results
    failure_rate: float = from_setting("breaker_failure_rate", 0.5)
    window_s: float = from_setting("breaker_window_s", 10.0)
    min_requests: int = from_setting("breaker_min_requests", 20)
    open_s: float = from_setting("breaker_open_s", 2.0)  # how long it stays open before a probe


@dataclass(frozen=True)
class SharedState:
    """What the store holds for a backend: the state, since when, and open until when."""

    state: str
    since: float
    until: float = 0.0
    cause: str = ""  # "429": held open for a backend's Retry-After, not for failures


class Breaker:
    def __init__(self, config: BreakerConfig):
        self.config = config
        self.state = SharedState(CLOSED, 0.0)
        self._consecutive = 0
        self._window: deque[list[float]] = deque()  # [second, results, failures]
        self._probe_at: float | None = None  # when the half-open probe in flight started

    def view(self, now: float) -> str:
        """closed, open, or half_open (open with its time up)."""
        if self.state.state == OPEN and now >= self.state.until:
            return HALF_OPEN
        return self.state.state

    def allows(self, now: float) -> bool:
        """Whether a request may go now (without claiming the half-open probe)."""
        view = self.view(now)
        if view == CLOSED:
            return True
        return view == HALF_OPEN and not self._probing(now)

    def acquire(self, now: float) -> bool:
        """`allows`, and in half-open claim the one probe. The state is viewed once (it runs
        for every request sent; `allows` then `view` viewed it twice), and a closed one without
        a call (`view` gives a closed state as it is)."""
        if self.state.state == CLOSED:
            return True
        view = self.view(now)
        if view == CLOSED:
            return True
        if view == HALF_OPEN and not self._probing(now):
            self._probe_at = now
            return True
        return False

    def record(self, ok: bool, now: float) -> SharedState | None:
        if self.state.state != CLOSED:  # a closed state is viewed as it is: no call
            view = self.view(now)
            if view == HALF_OPEN:
                self._probe_at = None
                return self._move(CLOSED if ok else OPEN, now)
            if view == OPEN:
                return None  # a late answer from before it opened
        self._count(ok, now)
        if ok:
            self._consecutive = 0
            return None
        self._consecutive += 1
        if self._consecutive >= self.config.failures or self._rate_exceeded():
            return self._move(OPEN, now)
        return None

    def hold(self, until: float, now: float) -> SharedState | None:
        """Open until `until` (a backend's Retry-After), whatever the counts say; an open state
        that already lasts longer is kept, so the member is never back before its time. The new
        state, or None when nothing changed."""
        if self.state.state == OPEN and self.state.until >= until:
            return None
        self._probe_at = None
        self.state = SharedState(OPEN, now, until, HELD)
        self._reset()
        return self.state

    def cooling(self, now: float) -> float:
        """Seconds until a breaker held open by a 429 lets a probe through (else 0)."""
        if self.state.state != OPEN or self.state.cause != HELD:
            return 0.0
        return max(0.0, self.state.until - now)

    def adopt(self, shared: SharedState) -> bool:
        """Take `shared` if it is newer than our state; True when it changed ours."""
        if shared.since <= self.state.since:
            return False
        self.state = shared
        self._reset()
        return True

    def _move(self, state: str, now: float) -> SharedState:
        until = now + self.config.open_s if state == OPEN else 0.0
        self.state = SharedState(state, now, until)
        self._reset()
        return self.state

    def _reset(self) -> None:
        self._consecutive = 0
        self._window.clear()
        self._probe_at = None

    def _probing(self, now: float) -> bool:
        # A probe that never reported (cancelled) frees the slot after open_s.
        return self._probe_at is not None and now - self._probe_at < self.config.open_s

    def _count(self, ok: bool, now: float) -> None:
        second = math.floor(now)
        while self._window and self._window[0][0] <= second - self.config.window_s:
            self._window.popleft()
        if not self._window or self._window[-1][0] != second:
            self._window.append([second, 0, 0])
        self._window[-1][1] += 1
        self._window[-1][2] += 0 if ok else 1

    def _rate_exceeded(self) -> bool:
        results = sum(b[1] for b in self._window)
        failures = sum(b[2] for b in self._window)
        return results >= self.config.min_requests and \
            failures >= self.config.failure_rate * results
