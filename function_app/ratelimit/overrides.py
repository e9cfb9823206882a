"""Effective limits per request: settings defaults merged with the overrides table.

`OverrideSource.limits_for` is synchronous and in-memory (hot path); a background loop reloads
the table every RATE_LIMIT_OVERRIDES_REFRESH_S so an operator's change applies without a
redeploy. A failed reload keeps the last good snapshot.
"""

from __future__ import annotations

import asyncio
import logging

from function_app.core.clock import Clock
from function_app.core.tasks import stop
from function_app.ratelimit.limits import ScopedLimit
from function_app.ratelimit.scopes import (
    LimitDefaults,
    OverrideIndex,
    effective_limits,
    index_overrides,
)
from function_app.ratelimit.store import OverrideStore

log = logging.getLogger(__name__)
# (client id, route) pairs whose limits are kept made; client ids come from clients, so the
# memo is emptied when it reaches this many rather than growing with them.
MADE_MAX = 4096


class OverrideSource:
    """Limits for (client id, route); `store` None means settings defaults only."""

    def __init__(
        self, store: OverrideStore | None, clock: Clock, defaults: LimitDefaults,
        refresh_s: float, *, background: bool = True,
    ) -> None:
        """`defaults` and `refresh_s` as load_settings parsed them (settings.limit_defaults,
        settings.limiter.overrides_refresh_s)."""
        self._store, self._clock = store, clock
        self._defaults, self._refresh_s = defaults, refresh_s
        self._index = OverrideIndex()
        # limits_for's answers for the current index, by (client id, route)
        self._made: dict[tuple[str | None, str | None], list[ScopedLimit]] = {}
        self._background = background and store is not None
        self._task: asyncio.Task | None = None
        self._closed = False
        self.counters = {"override_refreshes": 0, "override_refresh_failures": 0, "overrides": 0}

    def limits_for(self, client_id: str | None, route: str | None) -> list[ScopedLimit]:
        """Global, then client (override or default), then route (override only).

        Made once per (client id, route) and overrides snapshot: the same list (and the same
        ScopedLimit objects, which the limiters then match by identity) until a reload; the
        caller must not change it.
        """
        if self._task is None and self._background:
            self._ensure_running()
        key = (client_id, route)
        made = self._made.get(key)
        if made is None:
            made = effective_limits(self._defaults, self._index, client_id, route)
            if len(self._made) >= MADE_MAX:
                self._made.clear()
            self._made[key] = made
        return made

    async def refresh(self) -> bool:
        """Reload the overrides once; False (and the old snapshot kept) when storage fails."""
        if self._store is None:
            return True
        try:
            overrides = await self._store.read_all()
        except Exception:  # any failure keeps the last good snapshot
            log.warning("rate-limit overrides refresh failed; keeping the previous ones")
            self.counters["override_refresh_failures"] += 1
            return False
        self._index, self._made = index_overrides(overrides), {}
        self.counters["override_refreshes"] += 1
        self.counters["overrides"] = len(overrides)
        return True

    def _ensure_running(self) -> None:
        if not self._background or self._task is not None or self._closed:
            return
        try:
            self._task = asyncio.get_running_loop().create_task(self._loop())
        except RuntimeError:  # called outside a loop: refresh starts with the next call
            pass

    async def _loop(self) -> None:
        await self.refresh()
        await self._refresh_later()

    async def start(self) -> None:
        """Load once now (so the first requests see overrides) and start the refresh loop."""
        await self.refresh()
        if self._background and self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._refresh_later())
            await asyncio.sleep(0)  # let the loop start its first wait from now

    async def _refresh_later(self) -> None:
        while not self._closed:
            await self._clock.sleep(self._refresh_s)
            await self.refresh()

    async def close(self) -> None:
        self._closed = True
        await stop(self._task)
