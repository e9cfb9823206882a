"""Per-instance key lookups: a short-TTL cache in front of the KeyStore, with no storage call
on the request path for a key seen within the TTL.

- A known key is served from memory; after `ttl_s / 2` the next request triggers one background
  re-read (single flight) while the cached record keeps serving; after `ttl_s` the record is not
  used any more and the request waits for a fresh read. So a revocation or a changed limit is
  seen by every instance within `ttl_s` of the write (plus one read): keep `ttl_s` <= 4 s for
  the 5 s promise.
- An unknown hash is remembered as unknown for `ttl_s` too, in a bounded LRU (`negative_max`),
  so the same wrong key repeated costs nothing.
- Random well-formed keys miss both caches every time; their reads go through a token bucket of
  `lookups_per_s` per instance. When it is empty the request is refused (`LookupsExhausted`,
  503) instead of reading storage, so a flood of made-up keys cannot become a storage flood.
  Re-reads of known keys do not count against it.
- Lookups are coalesced per key: while a read of a key is in flight, every request for it
  waits for that read and shares its answer, and only the read counts against the bucket (the
  cap bounds storage reads, not requests).
- Storage down: a cached record is kept (stale) until storage answers, so an outage does not
  lock every tenant out; an uncached key raises KeyStoreUnavailable.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import OrderedDict
from dataclasses import dataclass

from ..core.clock import Clock
from .access import Grant
from .records import KeyRecord
from .store import KeyStore, KeyStoreUnavailable

log = logging.getLogger(__name__)


class LookupsExhausted(Exception):
    """Too many lookups of uncached keys on this instance just now."""


@dataclass
class _Entry:
    grant: Grant | None
    fetched: float


class KeyCache:
    def __init__(self, store: KeyStore, clock: Clock, *, ttl_s: float = 4.0,
                 negative_max: int = 10_000, lookups_per_s: float = 50.0) -> None:
        self._store, self._clock = store, clock
        self._ttl, self._negative_max = ttl_s, negative_max
        self._rate, self._tokens, self._tokens_at = lookups_per_s, lookups_per_s, clock.now()
        self._known: dict[str, _Entry] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()
        self._inflight: dict[str, asyncio.Task] = {}
        self.counters = {"hits": 0, "misses": 0, "reads": 0, "read_failures": 0,
                         "negative_hits": 0, "lookups_refused": 0, "joined": 0}

    def peek(self, key_hash: str) -> Grant | None:
        """The grant of a known key read within the TTL, without I/O; else None (call `grant`).
        Past half the TTL it also starts one background re-read."""
        entry = self._known.get(key_hash)
        if entry is None:
            return None
        age = self._clock.now() - entry.fetched
        if age >= self._ttl:
            return None
        self.counters["hits"] += 1
        if age >= self._ttl / 2:
            self._read_soon(key_hash)
        return entry.grant

    async def grant(self, key_hash: str) -> Grant | None:
        """The key's grant (whatever its revoked/expired state), or None when unknown."""
        cached = self.peek(key_hash)
        if cached is not None:
            return cached
        now = self._clock.now()
        entry = self._known.get(key_hash)
        if entry is not None:
            try:
                return await self._read(key_hash)
            except KeyStoreUnavailable:
                return entry.grant  # stale beats locking every tenant out during an outage
        seen = self._unknown.get(key_hash)
        if seen is not None and now - seen < self._ttl:
            self.counters["negative_hits"] += 1
            return None
        self.counters["misses"] += 1
        if key_hash in self._inflight:
            # A read of this key is already on its way: sharing its answer costs storage
            # nothing, so it takes nothing from the lookup bucket (150 requests with one new
            # key were 1 read and 90 refusals, issue #22 item 6).
            self.counters["joined"] += 1
        elif not self._take_lookup(now):
            self.counters["lookups_refused"] += 1
            raise LookupsExhausted()
        return await self._read(key_hash)

    def forget(self, key_hash: str) -> None:
        self._known.pop(key_hash, None)
        self._unknown.pop(key_hash, None)

    def _take_lookup(self, now: float) -> bool:
        self._tokens = min(self._rate, self._tokens + (now - self._tokens_at) * self._rate)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _read_soon(self, key_hash: str) -> None:
        self._start(key_hash)

    async def _read(self, key_hash: str) -> Grant | None:
        return await asyncio.shield(self._start(key_hash))

    def _start(self, key_hash: str) -> asyncio.Task:
        """The one read in flight for `key_hash` (registered at once, so requests arriving
        meanwhile join it instead of starting more)."""
        task = self._inflight.get(key_hash)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(key_hash))
            self._inflight[key_hash] = task

            def done(finished: asyncio.Task) -> None:
                self._inflight.pop(key_hash, None)
                if not finished.cancelled():
                    finished.exception()  # retrieved: a background re-read may have no waiter

            task.add_done_callback(done)
        return task

    async def _fetch(self, key_hash: str) -> Grant | None:
        self.counters["reads"] += 1
        try:
            record = await self._store.get_key(key_hash)
            tenant = await self._store.get_tenant(record.tenant) if record else None
        except KeyStoreUnavailable:
            self.counters["read_failures"] += 1
            log.warning("key store unavailable")
            raise
        now = self._clock.now()
        if record is None or not _same(record, key_hash):
            self._known.pop(key_hash, None)
            self._unknown[key_hash] = now
            self._unknown.move_to_end(key_hash)
            while len(self._unknown) > self._negative_max:
                self._unknown.popitem(last=False)
            return None
        grant = Grant(record, tenant)
        self._known[key_hash] = _Entry(grant, now)
        return grant


def _same(record: KeyRecord, key_hash: str) -> bool:
    # The store found the row by this hash; comparing again in constant time guards against an
    # adapter that matches loosely (case, prefix) and costs nothing measurable.
    return hmac.compare_digest(record.key_hash.encode(), key_hash.encode())
