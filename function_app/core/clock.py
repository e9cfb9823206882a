"""Injected time: wall-clock seconds and sleeping.

Rate-limit state is shared between instances through storage, so every timestamp that reaches
storage is wall-clock time (`time.time()`), never a monotonic reading that only means something
inside one process. Tests drive a fake clock by hand instead of sleeping (tests/support/clock.py).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock seconds since the epoch, and a sleep measured on the same clock."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: `time.time()` and `asyncio.sleep`."""

    # time.time itself, not a method that calls it: the routing breakers and the limiter read
    # the clock several times a request, and each reading was a Python frame more.
    now = staticmethod(time.time)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
