"""One attempt: a single exchange with one member, bounded in time and classified.

An observer placed in the request context (`attempt_observer`, by the telemetry stage) wraps
each attempt: it may set headers in `outgoing.headers` in place (`traceparent`), replacing those
of an earlier attempt, and it watches the outcome. Without one, the exchange is sent as is.
Retries and fallbacks call `send_attempt` once per attempt, so every upstream exchange of the
upstream step goes through the observer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..core.errors import GatewayError, Overloaded, UpstreamConnectError, UpstreamTimeout
from ..core.upstream import Upstream, UpstreamRequest, UpstreamResponse
from ..http.context import Fact
from .policy import Kind, Outcome, parse_retry_after

Send = Callable[[UpstreamRequest], Awaitable[UpstreamResponse]]
Observer = Callable[[UpstreamRequest, Send], Awaitable[UpstreamResponse]]
ATTEMPT_OBSERVER: Fact[Observer] = Fact("attempt_observer")  # wraps each attempt (a span)
Attempted = tuple[Outcome, UpstreamResponse | None, GatewayError | None]


async def send_attempt(upstream: Upstream, outgoing: UpstreamRequest,
                       attempt_timeout_s: float | None, observer: Observer | None) -> Attempted:
    """One attempt: the answer's headers within `attempt_timeout_s`, classified; the telemetry
    `observer` sees it as one client span. Overloaded (this instance's own connection pool is
    full) is raised: another attempt would only add to it.

    `attempt_timeout_s` None: the exchange's own `outgoing.timeout_s` is the only bound, which
    every Upstream keeps for the headers (UpstreamTimeout); no second timer is armed here."""
    # Through the observer when there is one (no helper coroutine: every attempt's path).
    sending = upstream.send(outgoing) if observer is None else observer(outgoing, upstream.send)
    try:
        if attempt_timeout_s is None:
            answer = await sending
        else:
            async with asyncio.timeout(attempt_timeout_s):
                answer = await sending
    except TimeoutError:
        return Outcome(Kind.TIMEOUT), None, UpstreamTimeout()
    except UpstreamTimeout as error:
        return Outcome(Kind.TIMEOUT), None, error
    except UpstreamConnectError as error:
        return Outcome(Kind.CONNECT), None, error
    except Overloaded:
        raise
    except GatewayError as error:
        return Outcome(Kind.RESET), None, error
    if answer.status < 400:  # not a failure: nothing waits on its Retry-After
        return Outcome(Kind.ANSWER, answer.status), answer, None
    # Azure's retry-after-ms (and OpenAI's) is finer than Retry-After's whole seconds.
    retry_after = parse_retry_after(answer.headers.get("retry-after-ms"), per_s=1000)
    if retry_after is None:
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
    return Outcome(Kind.ANSWER, answer.status, retry_after), answer, None
