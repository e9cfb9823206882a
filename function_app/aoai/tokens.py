"""Entra tokens for backends, cached per (credential, scope) and refreshed before they expire.

`CachedTokens` is the gateway's TokenProvider. Its contract:
- a token is reused until its refresh time: the source's `refresh_on` when it gives one, else
  expiry minus a margin (a quarter of the token's life, between MIN_MARGIN_S and MAX_MARGIN_S),
  so a token never leaves the gateway about to expire in flight;
- one fetch at a time per key: concurrent requests wait for the same fetch;
- azure-identity keeps its own cache and hands the same token back until its own refresh time
  (with no `refresh_in` from the endpoint: until expiry, see docs/AZURE_OPENAI.md); when the
  source answers a refresh with the token we already hold, or with a token a backend refused,
  the source is renewed (a new credential, an empty cache) and asked again;
- `invalidate` after a 401 drops the token, so the next `token` fetches another; the caller
  retries once;
- when a refresh fails while the held token is still valid, the held token is used and the
  refresh tried again after RETRY_S; with no valid token, TokenUnavailable.
Tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

from ..core.clock import Clock
from ..core.errors import UpstreamError

log = logging.getLogger(__name__)
MIN_MARGIN_S, MAX_MARGIN_S, RETRY_S = 1.0, 300.0, 1.0
REFUSED_KEPT = 64  # refused tokens remembered (a backend refusing every token cannot grow it)


class TokenUnavailable(UpstreamError, code="backend_auth_unavailable",
                       message="The gateway could not obtain a credential for the backend."):
    """No token could be obtained for a backend (502: the gateway's side, not the client's)."""


@dataclass(frozen=True)
class Token:
    value: str
    expires_on: float  # wall-clock seconds
    refresh_on: float | None = None


class TokenSource(Protocol):
    """A credential: `fetch` a token for a scope; `renew` starts over with an empty cache."""

    key: str  # names the credential (kind and client id), part of the cache key

    async def fetch(self, scope: str) -> Token: ...

    async def renew(self) -> None: ...

    async def close(self) -> None: ...


class TokenProvider(Protocol):
    """What the upstream step needs: a bearer token for a scope, and a way to drop one."""

    async def token(self, scope: str) -> str: ...

    def invalidate(self, scope: str, value: str) -> None: ...


@dataclass
class _Held:
    token: Token
    refresh_at: float


class CachedTokens:
    def __init__(self, source: TokenSource, clock: Clock):
        self._source, self._clock = source, clock
        self._held: dict[tuple[str, str], _Held] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._refused: dict[str, None] = {}  # insertion-ordered: the oldest goes first
        self.counters = dict.fromkeys(("fetches", "renewals", "failures", "invalidated"), 0)

    async def token(self, scope: str) -> str:
        key = (self._source.key, scope)
        held = self._held.get(key)
        if held is not None and self._clock.now() < held.refresh_at:
            return held.token.value
        async with self._locks.setdefault(key, asyncio.Lock()):
            held = self._held.get(key)
            now = self._clock.now()
            if held is not None and now < held.refresh_at:
                return held.token.value  # another request refreshed it meanwhile
            try:
                fresh = await self._fetch(scope, held)
            except Exception as exc:  # any credential failure: keep serving a valid token
                self.counters["failures"] += 1
                log.warning("could not obtain a token for %s: %s", scope, type(exc).__name__)
                if held is not None and now < held.token.expires_on - MIN_MARGIN_S:
                    held.refresh_at = now + RETRY_S
                    return held.token.value
                raise TokenUnavailable() from None
            self._held[key] = _Held(fresh, self._refresh_at(fresh, now))
            return fresh.value

    async def close(self) -> None:
        """Let go of the source's credential (its HTTP session)."""
        await self._source.close()

    def invalidate(self, scope: str, value: str) -> None:
        """A backend refused `value`: never send it again."""
        self._refused[value] = None
        while len(self._refused) > REFUSED_KEPT:
            del self._refused[next(iter(self._refused))]
        key = (self._source.key, scope)
        held = self._held.get(key)
        if held is not None and held.token.value == value:
            self.counters["invalidated"] += 1
            del self._held[key]

    async def _fetch(self, scope: str, held: _Held | None) -> Token:
        self.counters["fetches"] += 1
        fresh = await self._source.fetch(scope)
        stale = held is not None and fresh.value == held.token.value
        if stale or fresh.value in self._refused:
            self.counters["renewals"] += 1
            await self._source.renew()
            fresh = await self._source.fetch(scope)
        if fresh.value in self._refused or fresh.expires_on <= self._clock.now():
            raise ValueError("the credential gave an expired or refused token")
        return fresh

    @staticmethod
    def _refresh_at(token: Token, now: float) -> float:
        margin = min(MAX_MARGIN_S, max(MIN_MARGIN_S, (token.expires_on - now) / 4))
        at = token.expires_on - margin
        return min(at, token.refresh_on) if token.refresh_on else at
