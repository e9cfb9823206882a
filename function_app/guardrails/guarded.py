"""Content Safety behind a short cache, a rate limit of its own, and a health state.

- Cache: an answer is reused for `ttl_s` for the same text (SHA-256 of the text and the
  categories asked, or of the prompt and its documents); at most `max_entries`, oldest first
  out. A chat resends its whole history every turn, so most texts repeat.
- Rate limit: a token bucket (`rps`, burst 2 x rps) on calls that miss the cache, so a flood of
  distinct prompts cannot exhaust the resource's quota for everyone; a call over it fails at
  once as SafetyUnavailable (the policy's fail mode applies). After a 429 the service's
  Retry-After is honoured the same way.
- State for /healthz: "unknown" until the first call, then "ok", "unavailable" or "refused"
  (credentials refused) with a detail that names no URL or secret. `probe_if_stale`, called by
  /healthz, starts one tiny call in the background when nothing has reached the service for
  PROBE_EVERY_S, so an idle instance's report still says whether the service answers.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ..core.clock import Clock
from ..core.digest import digest
from ..core.tasks import stop
from .safety import ContentSafety, SafetyRefused, SafetyUnavailable, Shielded

PROBE_EVERY_S = 30.0


class GuardedSafety:
    def __init__(self, inner: ContentSafety, clock: Clock, *, rps: float, ttl_s: float = 60.0,
                 max_entries: int = 10_000):
        self._inner, self._clock = inner, clock
        self._rate, self._burst = rps, max(1.0, 2 * rps)
        self._tokens, self._refilled = self._burst, clock.now()
        self._paused_until = 0.0
        self._ttl, self._max = ttl_s, max_entries
        self._cache: OrderedDict[bytes, tuple[float, Any]] = OrderedDict()
        self.state: dict[str, Any] = {"state": "unknown", "detail": "", "since": 0.0}
        self.counters = {"calls": 0, "cache_hits": 0, "limited": 0, "failures": 0}
        self._heard_at = float("-inf")  # when the service last answered or failed
        self._probe: asyncio.Task | None = None

    async def analyze(self, text: str, categories: Sequence[str]) -> Mapping[str, int]:
        key = digest("a", text, *categories)
        return await self._cached(key, lambda: self._inner.analyze(text, categories))

    async def shield(self, user_prompt: str, documents: Sequence[str]) -> Shielded:
        key = digest("s", json.dumps([user_prompt, list(documents)]))
        return await self._cached(key, lambda: self._inner.shield(user_prompt, documents))

    def probe_if_stale(self) -> None:
        """Start a background call when the state is older than PROBE_EVERY_S (none running)."""
        if self._clock.now() - self._heard_at < PROBE_EVERY_S:
            return
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_once())

    async def _probe_once(self) -> None:
        try:
            self._admit(self._clock.now())
            await self._call(lambda: self._inner.analyze("health probe", ("Hate",)))
        except SafetyUnavailable:
            pass  # recorded in the state

    async def aclose(self) -> None:
        await stop(self._probe)
        await self._inner.aclose()

    async def _cached(self, key: bytes, call: Callable[[], Awaitable[Any]]) -> Any:
        now = self._clock.now()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            self.counters["cache_hits"] += 1
            return hit[1]
        self._admit(now)
        answer = await self._call(call)
        self._cache[key] = (self._clock.now() + self._ttl, answer)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return answer

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """One call to the service, its outcome recorded in the state."""
        self.counters["calls"] += 1
        try:
            answer = await call()
        except SafetyUnavailable as exc:
            self.counters["failures"] += 1
            if exc.retry_after_s:
                self._paused_until = self._clock.now() + exc.retry_after_s
            self._set("refused" if isinstance(exc, SafetyRefused) else "unavailable", str(exc))
            raise
        finally:
            self._heard_at = self._clock.now()
        self._set("ok", "")
        return answer

    def _admit(self, now: float) -> None:
        """Take one token of the rate limit, or raise SafetyUnavailable."""
        if now < self._paused_until:
            self.counters["limited"] += 1
            raise SafetyUnavailable("throttled by Content Safety (Retry-After)")
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1:
            self.counters["limited"] += 1
            raise SafetyUnavailable("over the gateway's rate limit to Content Safety")
        self._tokens -= 1

    def _set(self, state: str, detail: str) -> None:
        if self.state["state"] != state or self.state["detail"] != detail:
            self.state = {"state": state, "detail": detail, "since": self._clock.now()}

