"""Spend in currency: prices per token kind, and spend budgets reserved, settled and refunded
through the limiter (tenants/prices.py, tenants/spend.py, openai/bill.py)."""

from __future__ import annotations

import asyncio

import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.core.errors import RateLimited
from function_app.http.context import RequestContext
from function_app.openai.bill import Bill, reserve
from function_app.openai.ledger import TokenLedger
from function_app.openai.usage import Usage
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Decision
from function_app.settings.load import SettingsError, load_settings
from function_app.tenants.access import GRANT, Grant
from function_app.tenants.errors import BudgetExceeded
from function_app.tenants.limits import BudgetLimiter
from function_app.tenants.prices import Price, parse_prices
from function_app.tenants.records import KeyRecord, TenantRecord
from function_app.tenants.spend import MICRO, Spender
from function_app.tenants.usage import UsageRecorder
from function_app.wiring.tenants import open_tenancy
from tests.support.clock import FakeClock

PRICES = parse_prices({"m": {"input": 2, "cached_input": 0.5, "output": 8, "reasoning": 16,
                             "daily_budget": 1}, "flat": 3})


def test_each_token_kind_is_priced_at_its_own_rate_never_twice():
    usage = Usage(1000, 500, cached_tokens=600, reasoning_tokens=100)
    expected = (400 * 2 + 600 * 0.5 + 400 * 8 + 100 * 16) / 1e6
    assert PRICES["m"].cost(usage) == pytest.approx(expected)
    assert PRICES["flat"].cost(usage) == pytest.approx(1500 * 3 / 1e6)  # the old, one-number form


def test_cached_tokens_cost_less_than_the_same_tokens_uncached():
    price = PRICES["m"]
    assert price.cost(Usage(1000, 0, cached_tokens=1000)) == pytest.approx(1000 * 0.5 / 1e6)
    assert price.cost(Usage(1000, 0)) == pytest.approx(1000 * 2 / 1e6)


def test_the_reservation_is_the_most_an_estimate_can_cost():
    assert PRICES["m"].most(100, 10) == pytest.approx((100 * 2 + 10 * 16) / 1e6)


def test_price_objects_default_and_refuse_what_they_do_not_know():
    assert parse_prices({"x": {"input": 1, "output": 4}})["x"] == Price(1, 1, 4, 4)
    with pytest.raises(ValueError, match="output"):
        parse_prices({"x": {"input": 1}})
    with pytest.raises(ValueError, match="unknown"):
        parse_prices({"x": {"input": 1, "output": 1, "cache": 1}})
    with pytest.raises(SettingsError, match="MODEL_PRICES"):
        load_settings({"MODEL_PRICES": '{"x": {"input": -1, "output": 1}}'})


def make_bill(limiter, spender, model="m", prompt=100, budget=50, grant=None) -> Bill:
    """A bill of a request made with `grant`'s key (None: without a key)."""
    bill = Bill(limiter, [], TokenLedger(), "tenant:acme", model, prompt + budget,
                prompt_tokens=prompt)
    context = RequestContext(client_id="tenant:acme")
    if grant is not None:
        GRANT.set(context, grant)
    bill.spend = spender.charge(model, prompt, budget, context)
    return bill


def limiter_and_clock():
    clock = FakeClock()
    return Limiter(MemoryRateLimitStore(), clock, LimiterConfig(), "gw",
                   background=False), clock


async def test_spend_is_reserved_settled_to_the_real_cost_and_refunded_on_error():
    limiter, clock = limiter_and_clock()
    spender = Spender(PRICES, clock)
    bill = make_bill(limiter, spender)
    await reserve(bill, clock)
    scope = bill.spend.scopes[0]  # the model's daily budget of 1.00
    assert scope.scope == "spend_model_day" and scope.limit.burst == 1 * MICRO
    bill.settle(Usage(100, 20, cached_tokens=80))
    assert bill.cost == pytest.approx((20 * 2 + 80 * 0.5 + 20 * 8) / 1e6)
    assert bill.ledger.snapshot()["spend"]["by_model"] == {"m": pytest.approx(bill.cost)}
    failed = make_bill(limiter, spender)
    await reserve(failed, clock)
    failed.refund()
    # What is left is the budget less the one settled cost: a 1.00 budget admits requests
    # whose reservations add up to it, and no more.
    left = 1 * MICRO - round(bill.cost * MICRO)
    fits = int(left // bill.spend.reserved)
    for _ in range(fits):
        await reserve(make_bill(limiter, spender), clock)
    with pytest.raises(BudgetExceeded) as caught:
        await reserve(make_bill(limiter, spender), clock)
    assert "spend budget of model m" in caught.value.message
    assert caught.value.headers["x-budget-reset"].endswith("T00:00:00Z")


async def test_a_key_and_its_tenant_have_spend_budgets_and_their_cost_is_recorded():
    limiter, clock = limiter_and_clock()
    recorder = UsageRecorder()
    key = KeyRecord("h", "abc", "acme", "ci", 0.0, daily_spend=0.5, monthly_spend=2)
    grant = Grant(key, TenantRecord("acme", 0.0, daily_spend=3))
    bill = make_bill(limiter, Spender(PRICES, clock, recorder), model="flat", grant=grant)
    assert sorted(s.scope for s in bill.spend.scopes) == [
        "spend_key_day", "spend_key_month", "spend_tenant_day"]
    await reserve(bill, clock)
    bill.settle(Usage(100, 50))
    (row,) = recorder.due(clock.now(), force=True)
    assert (row.prefix, row.spend) == ("abc", pytest.approx(150 * 3 / 1e6))
    spender = Spender(PRICES, clock, recorder)
    await reserve(make_bill(limiter, spender, model="flat", prompt=100_000, grant=grant), clock)
    with pytest.raises(BudgetExceeded) as caught:  # the refusal names the key, from its grant
        await reserve(make_bill(limiter, spender, model="flat", prompt=100_000, grant=grant),
                      clock)
    assert "spend budget of" in caught.value.message and "abc" in caught.value.message


async def test_a_model_without_a_price_costs_nothing_and_has_no_budget():
    assert Spender(PRICES, FakeClock()).charge("unpriced", 10, 10, RequestContext()) is None


class Contended:
    """A limiter whose spend row is always in a write race (a short wait, not spent)."""

    async def acquire(self, scoped, cost=1):
        if scoped and scoped[0].scope.startswith("spend_"):
            return Decision(False, scope=scoped[0].scope, retry_after_s=0.5,
                            reason="contention")
        return Decision(True)

    def adjust(self, scoped, delta):
        pass


async def test_a_write_race_on_a_spend_row_is_a_retryable_429_not_budget_exceeded():
    clock = FakeClock()
    bill = make_bill(Contended(), Spender(PRICES, clock))
    reserving = asyncio.create_task(reserve(bill, clock))
    while not reserving.done():  # contention is retried within the queue time: let it pass
        await clock.advance(0.05)
    with pytest.raises(RateLimited) as caught:
        await reserving
    assert not isinstance(caught.value, BudgetExceeded) and caught.value.code != \
        "budget_exceeded"


def test_a_model_spend_budget_gets_the_budget_handling_without_keys():
    settings = load_settings({"MODEL_PRICES": '{"m": {"input": 1, "output": 1, '
                                              '"daily_budget": 5}}'})
    assert isinstance(open_tenancy(settings, FakeClock()).limiter(Contended()), BudgetLimiter)
    plain = load_settings({"MODEL_PRICES": '{"m": 1}'})
    assert open_tenancy(plain, FakeClock()).limiter(limiter := Contended()) is limiter
