"""Breakers shared by every instance through the BreakerStore, read through a short cache.

Each instance runs the state machine (breaker.py) on its own results. A transition is written
to the backend's row at once, in the background (ETag-guarded: on a conflict the newer state
wins); a loop re-reads all rows (and the health probes) every `cache_s`, and a row newer than
the local state is adopted, so an instance stops sending to a backend another one found broken
within about `cache_s` plus a storage round trip. With no store, or while it fails, each instance
keeps its own breakers and routing goes on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from function_app.core.store_errors import StoreConflict, StoreUnavailable

from ..core.clock import Clock
from .breaker import Breaker, BreakerConfig, SharedState
from .pools import Member
from .store import BreakerRow, BreakerStore, ProbeResult, ProbeStore

log = logging.getLogger(__name__)
WRITE_TRIES = 2
PROBES_EVERY_S = 2.0  # probes change once per timer run (10 s): read them less often


class SharedBreakers:
    def __init__(self, store: BreakerStore | None, probes: ProbeStore | None, clock: Clock,
                 config: BreakerConfig, *, cache_s: float = 0.5, probe_stale_s: float = 30.0,
                 storage_timeout_s: float = 1.0):
        self._store, self._probe_store, self._clock = store, probes, clock
        self.config = config
        self._cache_s, self._stale_s, self._timeout_s = cache_s, probe_stale_s, storage_timeout_s
        self._breakers: dict[str, Breaker] = {}
        self._etags: dict[str, str] = {}
        self.probes: dict[str, ProbeResult] = {}
        self.storage_healthy = store is not None
        self.counters = dict.fromkeys(("transitions", "writes", "conflicts", "adopted", "cooldowns",
                                       "refreshes", "refresh_failures"), 0)
        self._loop_task: asyncio.Task | None = None
        self._probes_read_at = float("-inf")
        # A member probed down: when its last trial request went, and its last success.
        self._trial_at: dict[str, float] = {}
        self._ok_at: dict[str, float] = {}
        self._tasks: set[asyncio.Task] = set()

    def breaker(self, name: str) -> Breaker:
        found = self._breakers.get(name)
        if found is None:
            found = self._breakers[name] = Breaker(self.config)
        return found

    def state(self, name: str) -> str:
        return self.breaker(name).view(self._clock.now())

    def probed_down(self, name: str) -> bool:
        """The last fresh probe failed and no request has succeeded on the member since."""
        probe = self.probes.get(name)
        return probe is not None and not probe.ok and \
            probe.at >= self._clock.now() - self._stale_s and \
            self._ok_at.get(name, float("-inf")) < probe.at

    def usable(self, member: Member, strict: bool = True) -> bool:
        """Breaker allows a request; with `strict`, a member whose last fresh probe failed is
        skipped except for one trial request each BREAKER_OPEN_S (after the probe, then after
        the last trial), as an open breaker does: a restarted backend is back on its first
        success rather than at the next timer run, up to HEALTH_CHECK_SCHEDULE later."""
        now = self._clock.now()
        if strict and self.probed_down(member.name):
            since = max(self.probes[member.name].at, self._trial_at.get(member.name, -1e18))
            if now - since < self.config.open_s:
                return False
        return self.breaker(member.name).allows(now)

    def acquire(self, member: Member) -> bool:
        if self.probed_down(member.name):  # chosen while probed down: this is its trial
            self._trial_at[member.name] = self._clock.now()
        return self.breaker(member.name).acquire(self._clock.now())

    def take(self, member: Member, strict: bool = True) -> bool:
        """`usable(member, strict) and acquire(member)`, in one: a lone member's pick, made for
        every request to a plan of one member. The probe, the breaker and the clock are read
        once each; the same gates, the same half-open claim and the same trial mark."""
        name = member.name
        now = self._clock.now()
        down = name in self.probes and self.probed_down(name)  # no call without a probe
        if down and strict:
            since = max(self.probes[name].at, self._trial_at.get(name, -1e18))
            if now - since < self.config.open_s:
                return False
        breaker = self._breakers.get(name) or self.breaker(name)  # `breaker`, inline when known
        if not breaker.acquire(now):
            return False
        if down:  # chosen while probed down: this is its trial
            self._trial_at[name] = now
        return True

    def record(self, member: Member, ok: bool) -> None:
        now = self._clock.now()  # one reading for the success mark and the breaker
        if ok:
            self._ok_at[member.name] = now
        moved = (self._breakers.get(member.name) or self.breaker(member.name)).record(ok, now)
        if moved is not None:
            self.counters["transitions"] += 1
            log.warning("breaker of %s is now %s", member.name, moved.state)
            self._spawn(self._publish(member.name, moved))

    def cool_down(self, member: Member, seconds: float) -> None:
        """A 429 said "not before `seconds`": open the member's breaker until then (shared)."""
        moved = self.breaker(member.name).hold(self._clock.now() + seconds, self._clock.now())
        if moved is not None:
            self.counters["cooldowns"] += 1
            log.info("%s cools down for %.3f s after a 429", member.name, seconds)
            self._spawn(self._publish(member.name, moved))

    def shortest_wait(self, members: list[Member]) -> float | None:
        """The shortest time until one of `members` takes requests again, when every one of
        them is held open; None when any is usable now."""
        now = self._clock.now()
        waits = [self.breaker(m.name).cooling(now) for m in members]
        return min(waits) if waits and all(w > 0 for w in waits) else None

    def start(self) -> None:
        """Start the refresh loop (once; needs a running event loop)."""
        if self._loop_task is None and (self._store is not None or self._probe_store):
            self._loop_task = asyncio.ensure_future(self._refresh_loop())

    async def refresh(self) -> None:
        """Read every breaker row (and the probes, every PROBES_EVERY_S) once; adopt newer
        states. When both are due and one store holds both, one storage call reads them."""
        try:
            now = self._clock.now()
            probes_due = self._probe_store is not None and \
                now - self._probes_read_at >= PROBES_EVERY_S
            both = getattr(self._store, "read_both", None) \
                if probes_due and self._store is self._probe_store else None
            found: list[ProbeResult] | None = None
            if both is not None:
                async with asyncio.timeout(self._timeout_s):
                    rows, found = await both()
                self._adopt(rows)
            elif self._store is not None:
                async with asyncio.timeout(self._timeout_s):
                    rows = await self._store.read_breakers()
                self._adopt(rows)
            if probes_due and found is None:
                async with asyncio.timeout(self._timeout_s):
                    found = await self._probe_store.read_probes()
            if found is not None:
                self.probes = {probe.backend: probe for probe in found}
                self._probes_read_at = now
            self.counters["refreshes"] += 1
            self.storage_healthy = True
        except (StoreUnavailable, TimeoutError) as exc:
            self.counters["refresh_failures"] += 1
            if self.storage_healthy:
                log.warning("breaker storage unavailable, breakers are per instance: %s", exc)
            self.storage_healthy = False

    def _adopt(self, rows: list[BreakerRow]) -> None:
        for row in rows:
            self._etags[row.backend] = row.etag
            if self.breaker(row.backend).adopt(row.state):
                self.counters["adopted"] += 1

    async def _refresh_loop(self) -> None:
        while True:
            await self.refresh()
            await self._clock.sleep(self._cache_s)

    async def _publish(self, name: str, state: SharedState) -> None:
        if self._store is None:
            return
        for _ in range(WRITE_TRIES):
            try:
                async with asyncio.timeout(self._timeout_s):
                    self._etags[name] = await self._store.write_breaker(
                        name, state, self._etags.get(name))
                self.counters["writes"] += 1
                return
            except StoreConflict:
                self.counters["conflicts"] += 1
                await self.refresh()  # the other writer's state, and the row's new ETag
                if self.breaker(name).state != state:
                    return  # theirs is newer and now ours
            except (StoreUnavailable, TimeoutError) as exc:
                self.storage_healthy = False
                log.warning("could not share the breaker of %s: %s", name, exc)
                return

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.ensure_future(coro)
        except RuntimeError:  # no running loop (pure unit use): nothing to share
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def snapshot(self) -> dict[str, Any]:
        now = self._clock.now()
        return {"storage_healthy": self.storage_healthy, **self.counters,
                "states": {name: b.view(now) for name, b in sorted(self._breakers.items())}}

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
        for task in [*self._tasks, *([self._loop_task] if self._loop_task else [])]:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
