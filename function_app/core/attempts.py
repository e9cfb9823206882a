"""The per-attempt hook of the upstream step: every upstream exchange goes through `send_attempt`.

An observer placed in the request context (`attempt_observer`, by the telemetry stage) wraps
each attempt: it may set headers in `outgoing.headers` in place (`traceparent`), replacing those
of an earlier attempt, and it watches the outcome. Without one, the exchange is sent as is.
Retries and fallbacks call this once per attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..http.context import Fact
from .upstream import UpstreamRequest, UpstreamResponse

Send = Callable[[UpstreamRequest], Awaitable[UpstreamResponse]]
Observer = Callable[[UpstreamRequest, Send], Awaitable[UpstreamResponse]]
ATTEMPT_OBSERVER: Fact[Observer] = Fact("attempt_observer")  # wraps each attempt (a span)


async def send_attempt(observer: Observer | None, send: Send, outgoing: UpstreamRequest
                       ) -> UpstreamResponse:
    if observer is None:
        return await send(outgoing)
    return await observer(outgoing, send)
