"""Waiting for a condition in tests: polled, and bounded only so that a regression fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path


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


async def files_settled(paths: list[Path], quiet_s: float = 0.3, within_s: float = 15.0) -> None:
    """Return once none of `paths` has grown for `quiet_s` (a process has written what it will
    about something that already happened); fail the test if they never settle."""
    sizes: dict[Path, int] = {}
    changed = time.monotonic()

    async def quiet() -> bool:
        nonlocal sizes, changed
        now = {path: path.stat().st_size if path.exists() else 0 for path in paths}
        if now != sizes:
            sizes, changed = now, time.monotonic()
        return time.monotonic() - changed >= quiet_s

    await wait_until(quiet, within_s)
