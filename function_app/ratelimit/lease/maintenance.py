"""Background upkeep of one limiter: give idle pools back, forget old keys, sweep storage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from function_app.core.clock import Clock
from function_app.core.tasks import every, stop
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.guarded import StorageHealth
from function_app.ratelimit.lease.keystate import EPSILON, KeyState
from function_app.ratelimit.lease.leaser import Leaser
from function_app.ratelimit.lease.sweeper import Sweeper

log = logging.getLogger(__name__)
RETURN_CONCURRENCY = 16
# Forgotten keys whose last lease was sized by demand above one request: (lease_goal,
# last_used) kept for the first lease when the key comes back (Limiter._state); the oldest
# go first beyond this many.
GOALS_KEPT = 4096


class Maintenance:
    def __init__(
        self, keys: dict[tuple[str, str], KeyState], leaser: Leaser, sweeper: Sweeper,
        health: StorageHealth, clock: Clock, cfg: LimiterConfig, background: bool,
        probe: Callable[[], Awaitable[object]] | None = None,
        goals: dict[tuple[str, str], tuple[float, float]] | None = None,
    ) -> None:
        self._keys, self._leaser, self._sweeper = keys, leaser, sweeper
        self.goals = {} if goals is None else goals
        self._probe = probe
        self._health, self._clock, self._cfg = health, clock, cfg
        self._background = background
        self._task: asyncio.Task | None = None
        self._closed = False

    def ensure_running(self) -> None:
        """Start the periodic loop on first use (the limiter may be built outside a loop)."""
        if self._background and self._task is None and not self._closed:
            self._task = asyncio.create_task(
                every(self._clock, self._cfg.tick_s, self.run_once, "rate limiter maintenance"))

    async def run_once(self) -> None:
        """Probe failing storage; return pools idle for idle_return_s or past expiry; drop
        long-unused keys; sweep."""
        now = self._clock.now()
        if self._probe is not None and not self._health.healthy and self._health.ready(now):
            # Recovery must not wait for traffic on a key: one cheap read per back-off period.
            with contextlib.suppress(Exception):
                await self._probe()
        due: list[KeyState] = []
        for name, ks in list(self._keys.items()):
            # A request deciding on the key (waiting for this or another scope's lease) has
            # not been counted in last_used yet: its pool is in use, not idle.
            if ks.fetch is not None or ks.waiting > 0 or ks.deciding:
                continue
            if ks.tokens > EPSILON:
                idle = now - ks.last_used >= self._cfg.idle_return_s
                if idle or now >= ks.expires_at:
                    due.append(ks)
            elif now - ks.last_used >= self._cfg.forget_s:
                del self._keys[name]
                self._remember(name, ks)
        if due and self._health.ready(now):
            await self._give_back(due)
        if self._health.ready(now):
            await self._sweeper.maybe_sweep(now)

    def _remember(self, name: tuple[str, str], ks: KeyState) -> None:
        """Keep a busy key's lease goal when its state is dropped: a key that comes back after
        `forget_s` (make bench's processes rest about 20-30 s between slices on a slow
        machine) then leases a block for the requests queued behind its first lease, as
        after a shorter pause, instead of one token and a chain of leases."""
        if ks.exact or ks.lease_goal <= ks.last_cost:
            return
        goals = self.goals
        goals.pop(name, None)
        goals[name] = (ks.lease_goal, ks.last_used)
        if len(goals) > GOALS_KEPT:
            del goals[next(iter(goals))]

    async def _give_back(self, due: list[KeyState], release: bool = False) -> None:
        gate = asyncio.Semaphore(RETURN_CONCURRENCY)

        async def one(ks: KeyState) -> None:
            async with gate:
                await self._leaser.give_back(ks, release=release)

        await asyncio.gather(*(one(ks) for ks in due))

    async def close(self) -> None:
        """Stop the loop, wait for leases in flight, and return every pool."""
        self._closed = True
        await stop(self._task)
        fetches = [ks.fetch for ks in self._keys.values() if ks.fetch is not None]
        if fetches:
            await asyncio.gather(*fetches, return_exceptions=True)
        now = self._clock.now()
        holding = [ks for ks in self._keys.values() if ks.tokens > EPSILON or ks.expires_at > now]
        if holding and self._health.ready(now):
            await self._give_back(holding, release=True)
