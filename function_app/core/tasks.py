"""The background tasks components own (refresh loops, maintenance, sweepers): running one
periodically, and stopping it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from function_app.core.clock import Clock

log = logging.getLogger(__name__)


async def every(clock: Clock, seconds: float, step: Callable[[], Awaitable[object]],
                what: str) -> None:
    """Run `step` every `seconds` of `clock` until cancelled (see `stop`); a pass that raises
    is logged as "`what` failed" and the next one runs as usual."""
    while True:
        await clock.sleep(seconds)
        try:
            await step()
        except Exception:  # upkeep must outlive one bad pass
            log.exception("%s failed", what)


async def stop(task: asyncio.Task | None) -> None:
    """Cancel `task` (None is fine) and wait until it has finished; its cancellation is not an
    error of the caller's. Any other exception it ended with is left to the task's own handling."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
