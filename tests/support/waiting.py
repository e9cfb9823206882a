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
