"""Waiting for a condition in tests: polled, and bounded only so that a regression fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def wait_until(condition: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    """Return once `await condition()` is true; fail the test if it is not within `within_s`."""
    deadline = time.monotonic() + within_s
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def poll_until(condition: Callable[[], object], within_s: float = 15.0, step_s: float = 0.05):
    """Call `condition()` until it returns something true, and return that; fail the test if
    it does not within `within_s` (for conditions in other processes, read over the wire)."""
    deadline = time.monotonic() + within_s
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(step_s)
    return value
