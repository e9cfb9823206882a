"""The completion cache of /v1/chat/completions, /v1/completions and /v1/embeddings.

Runs after the OpenAI stage (the model is resolved and its tokens reserved), before the upstream
step. Opt-in: models and routes listed in CACHE_COMPLETIONS are cached unless a request says
`x-gateway-cache: skip`; others only when it says `use`. `refresh` always fetches and stores.
The key is the client's own body, normalised (keys/whitespace/`stream`/`stream_options`/`user`
do not count), the origin and query the backend is sent (cache/inputs.py), per client unless
CACHE_COMPLETIONS_SHARED; a request with a header that rewrites it behind the gateway bypasses.
An answer is stored only when the rule shared with the GET cache (policy.unshareable) lets it
serve every request of its key: never with no-store, private or Set-Cookie, never in a content
coding or with a Vary (the key holds neither Accept-Encoding nor other request headers) and,
when the key is shared by every client, never for a request with credentials of its own
unless the answer says public, s-maxage or must-revalidate. Answers are stored as they came:
a stream as its events (only once it ended with [DONE]), a plain answer as its bytes; either
serves either kind of request (cache/replay.py). Responses and Messages (cache/agents.py)
follow the same rules, except that stateful Responses requests bypass, Anthropic's version
headers are keyed, and each form serves only its own kind of request. A hit tells the OpenAI
(or Anthropic) stage through `request.context.completion_free` to charge the prompt only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..core.errors import BadRequest
from ..core.pipeline import Handler
from ..http.headers import Headers
from ..http.messages import GatewayRequest, GatewayResponse
from ..openai.sse import split_events
from ..routing.routes import MATCH, OPENAI_CHAT, OPENAI_EMBEDDINGS
from .agents import AGENT_KINDS, ended, keyed_headers, stateful
from .entry import CacheEntry
from .front import CacheFront
from .http_cache import CACHE_HEADER, hit, marked
from .inputs import origin, rewrite_in
from .keys import completion_key, query_without_function_key
from .policy import unshareable
from .replay import assemble, completed, synthesize

REQUEST_HEADER = "x-gateway-cache"
USE, REFRESH, SKIP = "use", "refresh", "skip"

DROPPED = frozenset({"content-length", "x-request-id", "age"})


@dataclass(eq=False)
class CompletionCache(CacheFront):
    def mode(self, request: GatewayRequest, body: dict) -> str | None:
        """use, refresh or skip; None when neither configuration nor request mention caching."""
        asked = (request.headers.get(REQUEST_HEADER) or "").strip().lower()
        if asked and asked not in (USE, REFRESH, SKIP):
            raise BadRequest(f"{REQUEST_HEADER} must be one of use, refresh, skip.")
        route = MATCH.need(request.context).route.path
        configured = self.config.completions_on(str(body.get("model")), route)
        return asked or (USE if configured else None)

    async def serve(self, request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        body = request.context.json
        mode = self.mode(request, body)
        # The gateway's own control header is not for the backend.
        request.headers.remove(REQUEST_HEADER)
        if mode is None:
            return await call_next(request)
        kind = MATCH.need(request.context).route.kind
        if mode == SKIP or rewrite_in(request.headers) or stateful(kind, body):
            return marked(request, await call_next(request), "BYPASS")
        partition = "" if self.config.completions_shared else self.client_of(request)
        inputs = origin(request.headers, request.scheme) + " " + query_without_function_key(
            request.query) + keyed_headers(kind, request.headers)
        key = completion_key(kind, body, partition, inputs)
        stream = body.get("stream") is True and kind != OPENAI_EMBEDDINGS
        if mode == USE:
            entry = await self.tiers.get(key)
            answer = replay(entry, stream, kind, self.now()) if entry else None
            if answer is not None:
                self.counters.add("completion_hits")
                if not self.config.hit_charges_tokens:
                    request.context.completion_free = True
                return hit(request, answer)
        self.counters.add("completion_misses")
        response = await call_next(request)
        if response.status == 200:
            if self._shareable(request, response):
                self._store_when_done(key, response, kind)
            else:
                self.counters.add("completion_not_stored")
        return marked(request, response, "MISS")

    def _shareable(self, request: GatewayRequest, response: GatewayResponse) -> bool:
        """Whether `response` may serve every request of its key. A per-client key holds the
        request's credentials (client_of digests them); a shared key holds none."""
        credentialed = self.config.completions_shared and any(
            request.headers.get(name) for name in self.config.credential_headers)
        return unshareable(response.headers, credentialed=credentialed, coding_keyed=False,
                           vary_keyed=False) is None

    def _store_when_done(self, key: str, response: GatewayResponse, kind: str) -> None:
        headers = response.headers.without(DROPPED)
        is_stream = (response.headers.get("content-type") or "").startswith(
            "text/event-stream")
        if isinstance(response.body, (bytes, bytearray)):
            self._put(key, headers, bytes(response.body), None)
        else:
            response.body = self._recorded(key, headers, response.body, is_stream, kind)

    async def _recorded(self, key: str, headers: Headers, body: AsyncIterator[bytes],
                        is_stream: bool, kind: str) -> AsyncIterator[bytes]:
        """Pass `body` through, keeping a copy; store it if it ends whole and small enough."""
        chunks: list[bytes] = []
        size, whole = 0, False
        try:
            async for chunk in body:
                size += len(chunk)
                if size <= self.config.max_entry_bytes:
                    chunks.append(chunk)
                yield chunk
            whole = True
        finally:
            close = getattr(body, "aclose", None)
            if close is not None:
                await close()
        if not whole or size > self.config.max_entry_bytes:
            return
        data = b"".join(chunks)
        if not is_stream:
            self._put(key, headers, data, None)
            return
        events = split_events(data)
        if ended(kind, events) if kind in AGENT_KINDS else completed(events):
            self._put(key, headers, data, tuple(len(event) for event in events))

    def _put(self, key: str, headers: Headers, body: bytes, events: tuple[int, ...] | None
             ) -> None:
        if len(body) > self.config.max_entry_bytes:
            return
        entry = CacheEntry(200, headers, body, self.now(), float(self.config.ttl_s),
                           events=events)
        self.tiers.put(key, entry)
        self.counters.add("completion_stored")


def replay(entry: CacheEntry, stream: bool, kind: str, now: float) -> GatewayResponse | None:
    """The answer `entry` gives to a request of `kind` (streamed or not); None when it cannot
    give one (the agents' APIs: only from an entry of the same form)."""
    if kind in AGENT_KINDS and stream != (entry.events is not None):
        return None
    chat = kind == OPENAI_CHAT
    headers = entry.headers.without(("content-type",))
    if stream:
        events = entry.event_chunks() if entry.events is not None \
            else synthesize(entry.body, chat)
        if events is None:
            return None
        headers.set("content-type", "text/event-stream; charset=utf-8")
        return GatewayResponse(200, _hit(headers, entry, now), _events(events))
    body = entry.body if entry.events is None else assemble(entry.event_chunks(), chat)
    if body is None:
        return None
    headers.set("content-type", "application/json")
    return GatewayResponse(200, _hit(headers, entry, now), body)


def _hit(headers: Headers, entry: CacheEntry, now: float) -> Headers:
    headers.add("Age", str(int(entry.age(now))))
    headers.add(CACHE_HEADER, "HIT")
    return headers


async def _events(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
