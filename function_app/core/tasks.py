"""Stopping the background tasks components own (refresh loops, maintenance, sweepers)."""

from __future__ import annotations

import asyncio
import contextlib


async def stop(task: asyncio.Task | None) -> None:
    """Cancel `task` (None is fine) and wait until it has finished; its cancellation is not an
    error of the caller's. Any other exception it ended with is left to the task's own handling."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
