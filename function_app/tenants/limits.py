"""The key's own limits and budgets, joined to the shared limiter through its public surface.

Wrappers around what wiring passes to the stages, reading the request's grant from the request
context they are given (`GRANT`, set by the tenant auth stage; unset without a key, when each
wrapper answers as its inner component does):
- `KeyLimitsFor` adds scope "key" (the key's rps/burst) to the request limits of the
  rate-limit stage; the tenant ("tenant:<name>") keeps the client limit (default or override).
- `KeyTokenLimits` adds "key_tpm" (the key's tpm) and the budget scopes to the OpenAI stage's
  token scopes, so the same reserve-then-settle charges them; the list it returns is tagged with
  the grant and model, which is how usage and spend are counted per key.
- `BudgetLimiter` turns a denial by a budget scope into 429 budget_exceeded with the reset time,
  and counts the tokens charged and settled on tagged scopes.
- `KeyModels` refuses (403) a model the key may not use, and lists only the allowed ones.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Sequence
from dataclasses import replace

from function_app.ratelimit.limits import Decision, Limit, ScopedLimit
from function_app.ratelimit.tokens import TokenLimits

from ..core.clock import Clock
from ..http.context import RequestContext
from ..openai.bill import TokenLimiter
from ..routing.model_routes import ModelBackend, ModelTable
from ..routing.pools import Member, Plan
from ..routing.routes import MATCH
from .access import GRANT, Grant, model_allowed
from .budgets import SPEND_PREFIX, budget_scopes, describe, is_budget, reset_at
from .errors import BudgetExceeded, ModelNotAllowed
from .keys import display
from .usage import UsageRecorder

# A budget bucket has rate 0, so a real shortage says "never" (an hour, the clamp); a shorter
# wait is a lease race or a write conflict on the shared row, not a spent budget.
SPENT_WAIT_S = 60.0
# Every request of a tenant writes its one budget row (exact mode), so instances collide on its
# ETag; such a denial is retried here after a short jittered pause rather than answered 429.
RACE_RETRIES, RACE_PAUSE_S = 8, 0.02


class KeyLimitsFor:
    """The request limits of the rate-limit stage: `inner(client, route)` (defaults and
    overrides), plus scope "key" when the request's key has an rps of its own."""

    def __init__(self, inner: Callable[[str | None, str | None], list[ScopedLimit]]):
        self._inner = inner

    def __call__(self, context: RequestContext) -> list[ScopedLimit]:
        scoped = self._inner(context.client, MATCH.need(context).route.path)
        grant = GRANT.get(context)
        if grant is not None and grant.key.rps > 0:
            key = grant.key
            scoped = [*scoped, ScopedLimit("key", key.prefix,
                                           Limit(key.rps, max(key.burst, key.rps, 1.0)))]
        return scoped


class TaggedScopes(list):
    """Token scopes of one request made with a key: `grant` and `model` ride along."""

    def __init__(self, items: Sequence[ScopedLimit], grant: Grant, model: str):
        super().__init__(items)
        self.grant, self.model = grant, model


class KeyTokenLimits:
    """The token scopes of the model stages: the client's and the model's, plus the key's tpm
    and the key's and tenant's budgets when the request has a key."""

    def __init__(self, inner: TokenLimits, clock: Clock):
        self._inner, self._clock = inner, clock

    def scopes(self, context: RequestContext, model: str) -> list[ScopedLimit]:
        scoped = self._inner.scopes(context.client, model)
        grant = GRANT.get(context)
        if grant is None:
            return scoped
        if grant.key.tpm > 0:
            tpm = grant.key.tpm
            scoped = [*scoped, ScopedLimit("key_tpm", grant.key.prefix, Limit(tpm / 60, tpm),
                                              reserved=True)]
        return TaggedScopes([*scoped, *budget_scopes(grant, self._clock.now())], grant, model)


class BudgetLimiter:
    def __init__(self, inner: TokenLimiter, recorder: UsageRecorder, clock: Clock,
                 rng: random.Random | None = None):
        self._inner, self._recorder, self._clock = inner, recorder, clock
        self._rng = rng or random.Random()

    async def acquire(self, scoped: Sequence[ScopedLimit], cost: float = 1) -> Decision:
        for attempt in range(RACE_RETRIES + 1):
            decision = await self._inner.acquire(scoped, cost)
            if decision.allowed or not is_budget(decision.scope) \
                    or decision.storage_unavailable or decision.reason == "exceeds_limit":
                break
            if decision.retry_after_s >= SPENT_WAIT_S:
                raise _exceeded(scoped, decision, self._clock.now(), cost)
            if attempt < RACE_RETRIES:
                await self._clock.sleep(RACE_PAUSE_S * (0.5 + self._rng.random()) * (attempt + 1))
        if decision.allowed:
            self._count(scoped, cost)
        return decision

    def adjust(self, scoped: Sequence[ScopedLimit], delta: float) -> None:
        self._inner.adjust(scoped, delta)
        self._count(scoped, delta)

    def _count(self, scoped: Sequence[ScopedLimit], tokens: float) -> None:
        if isinstance(scoped, TaggedScopes) and tokens:
            key = scoped.grant.key
            # Spend is recorded at settlement, priced per token kind (tenants/spend.py).
            self._recorder.record(key.tenant, key.prefix, self._clock.now(), tokens=tokens)


def _exceeded(scoped: Sequence[ScopedLimit], decision: Decision, now: float, cost: float
              ) -> BudgetExceeded:
    item = next(s for s in scoped if s.scope == decision.scope)
    grant = scoped.grant if isinstance(scoped, TaggedScopes) else None
    return budget_exceeded(item, grant, now, cost)


def budget_exceeded(item: ScopedLimit, grant: Grant | None, now: float,
                    cost: float | None = None) -> BudgetExceeded:
    """429 budget_exceeded for the bucket `item` (a token or a spend budget) of a request made
    with `grant` (None without a key), which cannot pay `cost` (its reservation, when known)."""
    reset = reset_at(item.scope, item.key)
    when = dt.datetime.fromtimestamp(reset, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    who = describe(item.scope)
    spend = item.scope.startswith(SPEND_PREFIX)
    what = "spend budget" if spend else "token budget"
    if "_model_" in item.scope:
        who += f" {what} of model {item.key.rsplit(':', 1)[0]}"
    elif grant is not None:
        who += f" {what} of {display(grant.key.prefix)}" if "_key_" in item.scope \
            else f" {what} of tenant {grant.key.tenant}"
    size = f"{item.limit.burst / 1_000_000:.2f}" if spend else f"{int(item.limit.burst)} tokens"
    # "Spent" only in so far as it is: what is left (reservations of requests in flight count
    # until they are settled) cannot pay this request's reservation (issue #22).
    if cost is None:
        left = "is spent"
    elif spend:
        left = f"has less than the {cost / 1_000_000:.4f} this request reserves left"
    else:
        left = f"has fewer than the {int(cost)} tokens this request reserves left"
    message = f"{who[0].upper()}{who[1:]} ({size}) {left}; it resets at {when}."
    return BudgetExceeded(message, headers={"Retry-After": str(max(1, int(reset - now) + 1)),
                                            "x-budget-reset": when})


class KeyModels:
    """The model table as a request sees it: a key refuses (403) the models it may not use and
    lists only the allowed ones."""

    def __init__(self, inner: ModelTable):
        self._inner = inner

    def resolve(self, model: str, context: RequestContext) -> ModelBackend | None:
        grant = GRANT.get(context)
        if grant is not None and not model_allowed(grant.key, model):
            raise ModelNotAllowed(f"The API key {display(grant.key.prefix)} may not use the "
                                  f"model '{model}'.")
        return self._inner.resolve(model)

    def plan(self, model: str, context: RequestContext) -> Plan | None:
        """The inner plan without fallbacks to models the key may not use."""
        plan = self._inner.plan(model)
        grant = GRANT.get(context)
        if plan is None or grant is None:
            return plan
        kept = tuple(t for t in plan.targets
                     if t.model is None or model_allowed(grant.key, t.model))
        return replace(plan, targets=kept)

    def members(self, context: RequestContext) -> list[Member]:
        """The members of the models the key may use (for stored responses' ids)."""
        grant = GRANT.get(context)
        if grant is None:
            return self._inner.members()
        return self._inner.members(lambda model: model_allowed(grant.key, model))

    def names(self, context: RequestContext) -> list[str]:
        grant = GRANT.get(context)
        names = self._inner.names()
        return names if grant is None else [n for n in names if model_allowed(grant.key, n)]
