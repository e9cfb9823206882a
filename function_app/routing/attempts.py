"""One attempt: a single exchange with one member, bounded in time and classified.

An observer placed in the request context (`attempt_observer`, by the telemetry stage) wraps
each attempt: it may set headers in `outgoing.headers` in place (`traceparent`), replacing those
of an earlier attempt, and it watches the outcome. Without one, the exchange is sent as is.
Every attempt, retries and fallbacks included, is sent by member_attempt.py `_send`, through
the observer when there is one, so every upstream exchange of the upstream step goes through it.
`_send` awaits the exchange in its own frame (no coroutine of its own per attempt), bounded by
the attempt's timeout when it is nearer than the exchange's own deadline, and classifies what
comes of it here: `answered` for an answer of 400 or more (one under 400 is Kind.ANSWER with its
status, inline), `failure` for a failure. Overloaded (this instance's own connection pool is full)
is raised, never classified: another attempt would only add to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..core.errors import GatewayError, UpstreamConnectError, UpstreamTimeout
from ..core.upstream import UpstreamRequest, UpstreamResponse
from ..http.context import Fact
from .policy import ANSWERS, Kind, Outcome, parse_retry_after

Send = Callable[[UpstreamRequest], Awaitable[UpstreamResponse]]
Observer = Callable[[UpstreamRequest, Send], Awaitable[UpstreamResponse]]
ATTEMPT_OBSERVER: Fact[Observer] = Fact("attempt_observer")  # wraps each attempt (a span)
Attempted = tuple[Outcome, UpstreamResponse | None, GatewayError | None]


def answered(answer: UpstreamResponse) -> Attempted:
    """An answer's outcome, with the Retry-After of one of 400 or more (an answer under 400 is
    no failure: nothing waits on it)."""
    if answer.status < 400:
        return ANSWERS[answer.status], answer, None
    # Azure's retry-after-ms (and OpenAI's) is finer than Retry-After's whole seconds.
    retry_after = parse_retry_after(answer.headers.get("retry-after-ms"), per_s=1000)
    if retry_after is None:
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
    return (ANSWERS[answer.status] if retry_after is None
            else Outcome(Kind.ANSWER, answer.status, retry_after)), answer, None


def failure(exc: TimeoutError | GatewayError) -> Attempted:
    """The outcome of an exchange that raised `exc` (the attempt's own timer: TimeoutError; the
    Upstream's errors); never called for Overloaded, which the caller raises."""
    if isinstance(exc, TimeoutError):
        return Outcome(Kind.TIMEOUT), None, UpstreamTimeout()
    if isinstance(exc, UpstreamTimeout):
        return Outcome(Kind.TIMEOUT), None, exc
    if isinstance(exc, UpstreamConnectError):
        return Outcome(Kind.CONNECT), None, exc
    return Outcome(Kind.RESET), None, exc
