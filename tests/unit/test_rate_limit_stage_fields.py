"""The rate-limit stage's headers are rendered once per Decision, never stale: each answer
carries exactly rate_limit_headers(its own Decision), whichever Decision came before; and the
overrides' per-(client, route) limits follow a reload and stay bounded."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from function_app.core.errors import RateLimited
from function_app.http.context import RequestContext
from function_app.http.headers import Headers
from function_app.http.messages import GatewayResponse
from function_app.ratelimit import overrides
from function_app.ratelimit.headers import rate_limit_headers
from function_app.ratelimit.limits import Decision, Limit
from function_app.ratelimit.overrides import OverrideSource
from function_app.ratelimit.scopes import defaults_from
from function_app.ratelimit.stage import rate_limit_stage
from function_app.ratelimit.store import Override
from tests.support.clock import FakeClock
from tests.support.stores import MemoryOverrideStore

LIMIT = Limit(10.0, 20.0)
FIRST = Decision(True, "client", LIMIT, 19, 0.1)
SECOND = Decision(True, "client", LIMIT, 18, 0.2)
OTHER_SCOPE = Decision(True, "global", Limit(100.0, 300.0), 299, 0.01)
UNLIMITED = Decision(True)
DENIED = Decision(False, "client", LIMIT, 0, 2.0, 0.5, reason="limited")


class Scripted:
    def __init__(self, decisions):
        self.decisions = list(decisions)

    async def acquire(self, scoped, cost=1):
        return self.decisions.pop(0)


def expected(decision: Decision) -> dict[str, str]:
    return {name.lower(): value for name, value in rate_limit_headers(decision)}


async def test_each_answer_carries_the_headers_of_its_own_decision():
    order = [FIRST, FIRST, SECOND, FIRST, OTHER_SCOPE, UNLIMITED, SECOND, SECOND]
    stage = rate_limit_stage(Scripted(order), lambda context: ())

    async def call_next(request):
        return GatewayResponse(200, Headers([("x-upstream", "1")]))

    for decision in order:
        response = await stage(SimpleNamespace(context=RequestContext()), call_next)
        got = {name: value for name, value in response.headers if name != "x-upstream"}
        assert got == expected(decision)
        assert response.headers.get("x-upstream") == "1"


async def test_a_refusal_after_a_cached_admission_carries_its_own_headers():
    stage = rate_limit_stage(Scripted([FIRST, DENIED]), lambda context: ())

    async def call_next(request):
        return GatewayResponse(200, Headers())

    await stage(SimpleNamespace(context=RequestContext()), call_next)
    with pytest.raises(RateLimited) as caught:
        await stage(SimpleNamespace(context=RequestContext()), call_next)
    assert caught.value.headers == {**dict(rate_limit_headers(DENIED)), "Retry-After": "1"}


def source(store=None) -> OverrideSource:
    defaults = defaults_from(100.0, 200.0, 10.0, 20.0)
    return OverrideSource(store, FakeClock(), defaults, 30.0, background=False)


async def test_limits_follow_a_reload_of_the_overrides():
    store = MemoryOverrideStore()
    limits = source(store)
    before = limits.limits_for("vip", "/x")
    assert limits.limits_for("vip", "/x") is before  # made once for this snapshot
    await store.put(Override("client", "vip", Limit(500.0, 500.0)))
    assert limits.limits_for("vip", "/x") is before  # not reloaded yet
    await limits.refresh()
    after = limits.limits_for("vip", "/x")
    assert [(s.scope, s.limit.rate) for s in after] == [("global", 100.0), ("client", 500.0)]
    assert [(s.scope, s.limit.rate) for s in limits.limits_for("other", "/x")][1] == (
        "client", 10.0)


def test_limits_made_per_client_stay_bounded(monkeypatch):
    monkeypatch.setattr(overrides, "MADE_MAX", 50)
    limits = source()
    for n in range(500):  # client ids are the client's to choose
        scoped = limits.limits_for(f"c{n}", None)
        assert [(s.scope, s.key) for s in scoped] == [("global", "global"), ("client", f"c{n}")]
    assert len(limits._made) <= 50
