"""Admit or refuse each request against its global, client and route limits, once per request.

It runs before the upstream step, so a retry upstream never charges the quota twice. Every answer
on a limited route carries the rate-limit headers, a refusal included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from function_app.core.errors import NeverFits, RateLimited, StorageUnavailable
from function_app.core.pipeline import Handler, Stage
from function_app.http.context import RequestContext
from function_app.http.messages import GatewayRequest, GatewayResponse
from function_app.ratelimit.headers import rate_limit_fields, rate_limit_headers, retry_after
from function_app.ratelimit.limits import REQUESTS_DECISION, Decision, ScopedLimit

# The request's limits (wiring: defaults and overrides by client and route, and its key's).
LimitsFor = Callable[[RequestContext], Sequence[ScopedLimit]]


class Acquirer(Protocol):
    """The part of the limiter this stage needs. A limiter may also have `admit_now(scoped,
    cost)` (engine.LimiterEngine.admit_now): `acquire`'s fast path without a coroutine, None
    when `acquire` must decide."""

    async def acquire(self, scoped: Sequence[ScopedLimit], cost: float = 1) -> Decision: ...


def rate_limit_stage(limiter: Acquirer, limits_for: LimitsFor) -> Stage:
    """After the identity stage (`context.client_id`) and routing."""
    # The last admitted Decision and its header fields. The limiters hand out the same
    # Decision while its figures are unchanged (ratelimit/admitted.py), so far from binding the
    # headers are rendered once, not per request; any other Decision renders its own.
    last: tuple[Decision | None, dict[str, tuple[str, ...]]] = (None, {})
    admit_now = getattr(limiter, "admit_now", None)

    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        nonlocal last
        context = request.context
        scoped = limits_for(context)
        decision = None if admit_now is None else admit_now(scoped, 1.0)
        if decision is None:
            decision = await limiter.acquire(scoped, 1)
        REQUESTS_DECISION.set(context, decision)  # for the OpenAI x-ratelimit-* headers
        if not decision.allowed:
            refuse(decision)
        seen, fields = last
        if seen is not decision:
            fields = rate_limit_fields(decision)
            last = (decision, fields)
        response = await call_next(request)
        response.headers.update_fields(fields)
        return response

    return stage


def refuse(decision: Decision) -> None:
    """Raise the refusal of a denied `decision`, its rate-limit headers on it."""
    headers = rate_limit_headers(decision)
    if decision.reason == "exceeds_limit":  # waiting cannot help: 400, no Retry-After
        raise NeverFits(f"The '{decision.scope}' limit admits at most "
                        f"{int(decision.limit.burst if decision.limit else 0)} requests at "
                        "once; this request can never be admitted.", headers=dict(headers))
    error = StorageUnavailable if decision.storage_unavailable else RateLimited
    raise error(headers=dict([*headers, ("Retry-After", retry_after(decision))]))
