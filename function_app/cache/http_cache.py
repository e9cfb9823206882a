"""The GET/HEAD cache of proxied routes: look up, coalesce, fetch, store, answer with X-Cache.

X-Cache is HIT (answered from a tier, or from a concurrent identical request's fetch), MISS
(fetched; stored when the answer allows) or BYPASS (the request may not use the cache: it sent
Cache-Control: no-store, credentials (cookies included) on a route not cached per client, or a
header that rewrites it behind the gateway, cache/inputs.py). The key holds the origin and the
accepted codings the backend is sent, besides route, path and query. A HEAD is answered
from the GET entry; a HEAD miss is fetched as a GET so the entry serves both. An answer with
Vary is stored per variant (the request's values of the Vary fields), behind a marker entry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from ..core.pipeline import Handler
from ..http.messages import GatewayRequest, GatewayResponse
from ..routing.routes import MATCH
from .coalesce import Coalescer
from .config import OFF, PER_CLIENT
from .entry import VARIANTS, CacheEntry
from .front import CacheFront
from .inputs import PER_REQUEST, accepted_codings, as_sent, origin, rewrite_in
from .keys import http_key, variant_key, vary_values
from .policy import freshness, initial_age, request_rules, usable, vary_names

CACHE_HEADER = "X-Cache"


@dataclass(eq=False)
class HttpCache(CacheFront):
    coalescer: Coalescer[CacheEntry] = field(default_factory=Coalescer)

    async def serve(self, request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        route = MATCH.need(request.context).route.path
        mode = self.config.route_mode(route)
        if mode == OFF:
            return await call_next(request)
        rules = request_rules(request.headers)
        credentialed = any(request.headers.get(name) for name in self.config.credential_headers)
        if rules.bypass or (credentialed and mode != PER_CLIENT) or rewrite_in(request.headers):
            self.counters.add("bypass")
            return marked(request, await call_next(request), "BYPASS")
        partition = self.client_of(request) if mode == PER_CLIENT else ""
        inputs = origin(request.headers, request.scheme) + " " + accepted_codings(request.headers)
        key = http_key(route, request.path, request.query, partition, inputs)
        head = request.method == "HEAD"
        if rules.reuse:
            entry = await self._lookup(key, request)
            if entry is not None and self._fits(entry, request, rules):
                self.counters.add("hits")
                return hit(request, hit_response(entry, self.now(), head))
            if self.coalescer.leading(key):
                entry = await self.coalescer.wait(key)
                if entry is not None and _vary_matches(entry, request):
                    self.counters.add("hits")
                    return hit(request, hit_response(entry, self.now(), head))
        self.counters.add("misses")
        if head:
            request.method = "GET"  # the entry must hold the body a later GET needs

        async def fetch() -> tuple[CacheEntry | None, GatewayResponse]:
            response = await call_next(request)
            return self._store(key, request, response), response

        response = await self.coalescer.lead(key, fetch) if rules.reuse else (await fetch())[1]
        assert isinstance(response, GatewayResponse)
        if head:
            request.method = "HEAD"
            await _discard(response)
        return marked(request, response, "MISS")

    async def _lookup(self, key: str, request: GatewayRequest) -> CacheEntry | None:
        """The entry for `key`; through its variants marker when the answer has a Vary."""
        entry = await self.tiers.get(key)
        if entry is None or not entry.is_variants_marker:
            return entry
        names = tuple(name for name, _ in entry.vary)
        return await self.tiers.get(variant_key(key, vary_values(names, as_sent(request))))

    def _put(self, key: str, entry: CacheEntry) -> None:
        """Store under `key`, or, for an answer with a Vary, under the key of its variant with
        a marker naming the Vary fields under `key`, so every variant can be held at once."""
        if entry.vary:
            marker = CacheEntry(VARIANTS, [], b"", entry.stored_at, entry.ttl,
                                entry.initial_age, tuple((name, "") for name, _ in entry.vary))
            self.tiers.put(key, marker)
            key = variant_key(key, entry.vary)
        self.tiers.put(key, entry)

    def _fits(self, entry: CacheEntry, request: GatewayRequest, rules) -> bool:
        return usable(entry.age(self.now()), entry.ttl, rules) and _vary_matches(entry, request)

    def _store(self, key: str, request: GatewayRequest, response: GatewayResponse
                     ) -> CacheEntry | None:
        """Store `response` when its headers allow. A whole body (bytes) is stored at once and
        the entry returned, for coalesced followers; a streamed body is passed on as it comes
        and stored once it has ended whole (followers then fetch for themselves). Event
        streams are never stored. Returns the entry stored now, or None."""
        ttl = freshness(response.status, response.headers, self.config.ttl_s)
        names = vary_names(response.headers)
        content_type = response.headers.get("content-type") or ""
        if ttl <= 0 or names is None or PER_REQUEST.intersection(names) \
                or content_type.startswith("text/event-stream"):
            self.counters.add("not_stored")
            return None
        if "cache-control" not in response.headers:
            response.headers.set("Cache-Control", f"max-age={ttl}")
        stored_headers = response.headers.without(("content-length", "age"))
        varied = vary_values(names, as_sent(request)) if names else ()

        def make(body: bytes) -> CacheEntry:
            return CacheEntry(response.status, stored_headers, body, self.now(), float(ttl),
                              initial_age(response.headers), varied)

        if not isinstance(response.body, (bytes, bytearray)):
            response.body = self._recorded(key, response.body, make)
            return None
        if len(response.body) > self.config.max_entry_bytes:
            self.counters.add("too_large")
            return None
        entry = make(bytes(response.body))
        self._put(key, entry)
        self.counters.add("stored")
        return entry

    async def _recorded(self, key: str, body: AsyncIterator[bytes],
                        make: Callable[[bytes], CacheEntry]) -> AsyncIterator[bytes]:
        """Pass `body` through chunk by chunk; store it if it ends whole and small enough."""
        chunks: list[bytes] = []
        size, limit = 0, self.config.max_entry_bytes
        try:
            async for chunk in body:
                size += len(chunk)
                if size <= limit:
                    chunks.append(chunk)
                yield chunk
        finally:
            close = getattr(body, "aclose", None)
            if close is not None:
                await close()
        if size > limit:
            self.counters.add("too_large")
            return
        self._put(key, make(b"".join(chunks)))
        self.counters.add("stored")


def hit_response(entry: CacheEntry, now: float, head: bool) -> GatewayResponse:
    headers = entry.headers.copy()
    headers.add("Age", str(int(entry.age(now))))
    headers.add(CACHE_HEADER, "HIT")
    return GatewayResponse(entry.status, headers, b"" if head else entry.body)


def _vary_matches(entry: CacheEntry, request: GatewayRequest) -> bool:
    if not entry.vary:
        return True
    return vary_values(tuple(name for name, _ in entry.vary), as_sent(request)) == entry.vary


def hit(request: GatewayRequest, response: GatewayResponse) -> GatewayResponse:
    """A hit (its X-Cache: HIT is part of the answer built from the entry), noted on the
    request context for telemetry."""
    request.context.cache_status = "hit"
    return response


def marked(request: GatewayRequest, response: GatewayResponse, state: str) -> GatewayResponse:
    """`response` with X-Cache: `state` (HIT, MISS, BYPASS), and the verdict left on the
    request context for telemetry (the lookups metric and the request log)."""
    request.context.cache_status = state.lower()
    response.headers.set(CACHE_HEADER, state)
    return response


async def _discard(response: GatewayResponse) -> None:
    if not isinstance(response.body, (bytes, bytearray)):
        close = getattr(response.body, "aclose", None)
        if close is not None:
            await close()
    response.body = b""
