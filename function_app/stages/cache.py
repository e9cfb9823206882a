"""The cache stage: GET/HEAD answers of proxied routes, and completions (OpenAI chat,
completions, embeddings and Responses; Anthropic Messages), from the cache.

Placed after the rate-limit stage, as in the prototype: a hit is still a request, counted and
limited like any other, and it carries the rate-limit headers because that stage decorates
whatever answer comes back. Placed after the OpenAI and Anthropic stages, so completions are
keyed on a checked body, their model resolved and their tokens reserved (a hit then settles
for its prompt only).
Any other route passes straight through.
"""

from __future__ import annotations

from collections.abc import Awaitable

from ..cache.completion_cache import CompletionCache
from ..cache.http_cache import HttpCache
from ..core.pipeline import Handler, Stage
from ..http.messages import GatewayRequest, GatewayResponse
from ..routing.routes import (
    ANTHROPIC_MESSAGES,
    MATCH,
    OPENAI_CHAT,
    OPENAI_COMPLETIONS,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSES,
    PROXY,
)

COMPLETION_KINDS = frozenset({OPENAI_CHAT, OPENAI_COMPLETIONS, OPENAI_EMBEDDINGS,
                              OPENAI_RESPONSES, ANTHROPIC_MESSAGES})
CACHED_METHODS = frozenset({"GET", "HEAD"})
CACHED_KINDS = COMPLETION_KINDS | {PROXY}  # the route kinds the stage below acts on


def cache_stage(http: HttpCache, completions: CompletionCache) -> Stage:
    def stage(request: GatewayRequest, call_next: Handler) -> Awaitable[GatewayResponse]:
        # Not a coroutine: what it hands the request to is the one awaited (a frame fewer per
        # request, resumed at every wait below, for a proxied POST that it only passes on).
        kind = MATCH.need(request.context).route.kind
        if kind == PROXY:
            if request.method in CACHED_METHODS:
                return http.serve(request, call_next)
        elif kind in COMPLETION_KINDS:
            return completions.serve(request, call_next)
        return call_next(request)

    return stage
