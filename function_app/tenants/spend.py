"""Spend budgets in currency, charged through the limiter like the token budgets.

A request's spend is reserved before it is forwarded, at the most its estimate can cost
(`Price.most`: the prompt estimate at the uncached rate plus max_tokens at the dearer output
rate), and settled to the real cost of the reported usage (each token kind at its own price),
refunded when the backend answered an error, kept when no usage came. The buckets are those of
budgets.py (rate 0, burst = the budget, one row per period: a calendar reset is a new row),
counted in millionths of the currency unit (MICRO) so a cost is a whole number of units:

    spend_key_<day|month>     <key prefix>:<period>     KeyRecord.daily_spend / monthly_spend
    spend_tenant_<day|month>  <tenant>:<period>         TenantRecord.daily_spend / ...
    spend_model_<day|month>   <model>:<period>          MODEL_PRICES' daily_budget / ...

Rate 0 puts the limiter in its exact mode, so the bound across N instances is the token
budgets' one, budget + N x c (c: the largest reservation of one request), plus any cost beyond
a request's own reservation (a prompt the offline estimate undercounted), settled afterwards
as a debt. A spent budget answers 429 budget_exceeded with its reset time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from function_app.ratelimit.limits import Decision, Limit, ScopedLimit

from ..core.clock import Clock
from ..core.errors import GatewayError, RateLimited
from ..http.context import RequestContext
from .access import GRANT, Grant
from .budgets import DAY, MONTH, SPEND_PREFIX, period_id
from .limits import SPENT_WAIT_S, budget_exceeded
from .prices import Price
from .usage import UsageRecorder

MICRO = 1_000_000


def micro(cost: float) -> float:
    """A currency amount in the limiter's unit (whole millionths, rounded up)."""
    return float(-(-round(cost * MICRO * 1000) // 1000))


@dataclass
class SpendCharge:
    """One request's spend: scopes to charge (maybe none), its price, what was reserved (in
    micro-units) and where its settled cost is recorded (per key, when one was used)."""

    scopes: list[ScopedLimit]
    price: Price
    reserved: float
    key: str | None = None
    grant: Grant | None = None  # the request's key, when one was used
    record: Callable[[float], None] = field(default=lambda cost: None, repr=False)

    def cost(self, usage) -> float:
        return self.price.cost(usage)

    @staticmethod
    def micro(cost: float) -> float:
        return micro(cost)

    def refused(self, decision: Decision, now: float) -> GatewayError:
        """429 budget_exceeded for the spend bucket that refused; a short wait is a write race
        on the shared row, not a spent budget: a plain, retryable 429 then (no false
        "budget exceeded")."""
        if decision.retry_after_s < SPENT_WAIT_S:
            wait = max(1, math.ceil(decision.retry_after_s))
            return RateLimited("The spend budget is being updated by other requests; retry "
                               "shortly.", headers={"Retry-After": str(wait)})
        item = next((s for s in self.scopes if s.scope == decision.scope), self.scopes[0])
        return budget_exceeded(item, self.grant, now, self.reserved)


def spend_scopes(entries: list[tuple[str, str, str, float]], now: float) -> list[ScopedLimit]:
    """(who, ident, period, budget) -> the period buckets of those with a budget > 0."""
    return [ScopedLimit(f"{SPEND_PREFIX}{who}_{period}", f"{ident}:{period_id(period, now)}",
                        Limit(0.0, micro(budget)), reserved=True)
            for who, ident, period, budget in entries if budget > 0]


class Spender:
    """Prices a request by model and names the spend buckets it is charged against."""

    def __init__(self, prices: dict[str, Price], clock: Clock,
                 recorder: UsageRecorder | None = None):
        self._prices, self._clock, self._recorder = prices, clock, recorder

    def charge(self, model: str, prompt_tokens: int, completion_tokens: int,
               context: RequestContext) -> SpendCharge | None:
        """None when the model has no price (it costs nothing and has no spend budget); the
        key's and tenant's budgets too when the request (`context`) has a key."""
        price = self._prices.get(model)
        if price is None:
            return None
        now = self._clock.now()
        wanted = [("model", model, DAY, price.daily_budget),
                  ("model", model, MONTH, price.monthly_budget)]
        grant = GRANT.get(context)
        charge = SpendCharge([], price, micro(price.most(prompt_tokens, completion_tokens)),
                             grant=grant)
        if grant is not None:
            key, tenant = grant.key, grant.tenant
            wanted += [("key", key.prefix, DAY, key.daily_spend),
                       ("key", key.prefix, MONTH, key.monthly_spend)]
            if tenant is not None:
                wanted += [("tenant", tenant.name, DAY, tenant.daily_spend),
                           ("tenant", tenant.name, MONTH, tenant.monthly_spend)]
            charge.key = key.prefix
            if self._recorder is not None:
                recorder = self._recorder
                charge.record = lambda cost: recorder.record(
                    key.tenant, key.prefix, self._clock.now(), spend=cost)
        charge.scopes = spend_scopes(wanted, now)
        return charge
