"""Token budgets per key and per tenant, per UTC day and per UTC month, as limiter scopes.

The limiter's bucket refills continuously, which cannot express "resets at midnight". So each
period is its own bucket: scope `budget_<who>_<period>`, key `<who>:<period id>` (for example
`tenant:acme:2026-11-29`), rate 0 and burst = the budget. A new period is a new, full bucket;
the old row is never touched again. With rate 0 the limiter works in its exact mode (a lease
is exactly one request's cost), so its stated bound burst + rate*T + rate*lease*H(N) + N*c
becomes budget + N*c: at most one in-flight request's estimate per instance beyond the budget,
plus usage that exceeds its own estimate (settled afterwards as a debt on the instance).
"""

from __future__ import annotations

import datetime as dt
import functools

from function_app.ratelimit.limits import Limit, ScopedLimit

from .access import Grant

PREFIX = "budget_"
DAY, MONTH = "day", "month"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@functools.lru_cache(maxsize=8)
def _day(number: int) -> str:
    return (EPOCH + dt.timedelta(days=number)).strftime("%Y-%m-%d")


def period_id(period: str, now: float) -> str:
    """"2026-11-29" (DAY) or "2026-11" (MONTH), UTC; memoised per day (it runs per request)."""
    day = _day(int(now // 86400))
    return day if period == DAY else day[:7]


def period_end(period: str, ident: str) -> float:
    """Epoch seconds at which the period `ident` (as from period_id) ends."""
    if period == DAY:
        start = dt.datetime.strptime(ident, "%Y-%m-%d").replace(tzinfo=dt.UTC)
        return (start + dt.timedelta(days=1)).timestamp()
    start = dt.datetime.strptime(ident, "%Y-%m").replace(tzinfo=dt.UTC)
    following = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following.timestamp()


def budget_scopes(grant: Grant, now: float) -> list[ScopedLimit]:
    """The budget buckets a request made with `grant` is charged against (0 = no budget)."""
    key, tenant = grant.key, grant.tenant
    wanted = [("key", key.prefix, DAY, key.daily_tokens),
              ("key", key.prefix, MONTH, key.monthly_tokens)]
    if tenant is not None:
        wanted += [("tenant", tenant.name, DAY, tenant.daily_tokens),
                   ("tenant", tenant.name, MONTH, tenant.monthly_tokens)]
    return [ScopedLimit(f"{PREFIX}{who}_{period}", f"{ident}:{period_id(period, now)}",
                        Limit(0.0, float(budget)), reserved=True)
            for who, ident, period, budget in wanted if budget > 0]


SPEND_PREFIX = "spend_"  # currency budgets (tenants/spend.py): the same buckets, in micro-units


def is_budget(scope: str | None) -> bool:
    """A token budget or a spend budget."""
    return scope is not None and scope.startswith((PREFIX, SPEND_PREFIX))


def reset_at(scope: str, key: str) -> float:
    """When the budget bucket (scope, key) is replaced by a fresh one."""
    period = scope.rsplit("_", 1)[1]
    return period_end(period, key.rsplit(":", 1)[1])


def describe(scope: str) -> str:
    """`budget_tenant_day` (or `spend_tenant_day`) -> "the tenant's daily"."""
    _, who, period = scope.split("_")
    return f"the {who}'s {'daily' if period == DAY else 'monthly'}"
