"""The one-member fast path (routing/upstream.py `_only_member`) against the general loop: the
same requests, answered by the same backend script, must give the same answers and leave the
same counters (routing stats, breakers, retry budget, outstanding counts) either way."""

import json

import httpx
import pytest

from function_app.routing import upstream
from function_app.routing.store import ProbeResult
from tests.support.handler_calls import make_request, read_body
from tests.unit.test_routing_handlers import NODE, REFUSED, by_host, ok, routing_stats

ROUTE = [{"path": "/infer/node", "methods": ["POST", "GET"], "backend": "node"}]
VOLATILE = {"x-request-id", "date", "traceparent"}
SCENARIOS = {
    "success": [ok(), ok()],
    "a 500": [httpx.Response(500, json={"e": 1}, headers={"x-b": "1"})],
    "a 503 then success": [httpx.Response(503), ok(), ok()],
    "503s": [httpx.Response(503)],
    "a 429 with Retry-After": [httpx.Response(429, headers={"retry-after": "1"}), ok()],
    "a timeout": [httpx.ReadTimeout("slow")],
    "a connect error": [REFUSED],
    "a connect error then success": [REFUSED, ok()],
}


def _fresh(answers):
    # by_host pops its list: each run gets its own copy of the script
    return by_host(**{NODE: list(answers)})


async def _run(install, backend, monkeypatch, answers, *, fast: bool,
               probed_down: bool = False) -> dict:
    routers, taken = [], []
    real_exchange, real_only = upstream.Exchange, upstream._only_member

    def exchange(router, request):
        if probed_down and not routers:  # the member's last probe failed: strict pass skips it
            now = router.breakers._clock.now()
            router.breakers.probes = {"node": ProbeResult("node", False, now, 1.0)}
        routers.append(router)
        return real_exchange(router, request)

    def only(ex, target):
        taken.append(1)
        return real_only(ex, target) if fast else upstream._planned(ex, (True, False))

    monkeypatch.setattr(upstream, "Exchange", exchange)
    monkeypatch.setattr(upstream, "_only_member", only)
    await install(GATEWAY_ROUTES=json.dumps(ROUTE), BREAKER_FAILURES="2", BREAKER_OPEN_S="60",
                  RETRY_BUDGET_MIN_PER_S="0.1", RETRY_BUDGET_RATIO="0",
                  RATE_LIMIT_ENABLED="false")  # its headers move with the clock
    backend.respond = _fresh(answers)
    seen = []
    for method in ("POST", "GET", "POST", "GET"):  # GET is idempotent: retried after a reset
        response = await upstream_call(method)
        headers = sorted((k, v) for k, v in response.headers.items() if k not in VOLATILE)
        body = json.loads(await read_body(response) or b"null")
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            body["error"].pop("request_id", None)
        seen.append((response.status_code, headers, body))
    router = routers[0]
    assert taken, "the plan of one member did not reach _only_member"
    budget = router.budgets["/infer/node"]
    return {"answers": seen, "sent": [r.method for r in backend.seen],
            "stats": await routing_stats(), "outstanding": dict(router.outstanding),
            # totals, not per-second buckets: a run that crosses a wall-clock second splits
            # the same requests over two buckets
            "budget": [sum(b[1] for b in budget._buckets), sum(b[2] for b in budget._buckets)]}


async def upstream_call(method):
    from function_app.app import proxy

    body = b'{"prompt": "hi"}' if method == "POST" else b""
    return await proxy(make_request(method, "/infer/node", body,
                                    {"content-type": "application/json"}))


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_the_fast_path_gives_what_the_general_loop_gives(name, install, backend,
                                                                monkeypatch):
    fast = await _run(install, backend, monkeypatch, SCENARIOS[name], fast=True)
    backend.seen.clear()
    general = await _run(install, backend, monkeypatch, SCENARIOS[name], fast=False)
    assert fast == general
    assert fast["sent"]  # the backend was reached: the comparison is not of two empty runs


@pytest.mark.parametrize("name", ["success", "a connect error"])
async def test_a_member_probed_down_is_still_tried_as_the_general_loop_tries_it(
        name, install, backend, monkeypatch):
    fast = await _run(install, backend, monkeypatch, SCENARIOS[name], fast=True, probed_down=True)
    backend.seen.clear()
    general = await _run(install, backend, monkeypatch, SCENARIOS[name], fast=False,
                         probed_down=True)
    assert fast == general
    assert fast["sent"]  # the non-strict pass sent it: nothing else passed the probes
