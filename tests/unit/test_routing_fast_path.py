"""A plan of one member (the defaults' /infer/node, every plain route) through the attempt loop:
retries, breakers, the retry budget, outstanding counts and probes, as the loop gives them.

The loop once had a fast path of its own for this plan (`_only_member`, which this file checked
against the general loop by running both; docs name the file for it); there is now one loop for
every plan (routing/upstream.py), and these are the answers, stats and counters the two gave,
scenario by scenario (docs/perf/pass11-route.md)."""

import json

import httpx
import pytest

from function_app.routing import upstream
from function_app.routing.store import ProbeResult
from tests.support.handler_calls import make_request, read_body
from tests.unit.test_routing_handlers import NODE, REFUSED, by_host, ok, routing_stats

ROUTE = [{"path": "/infer/node", "methods": ["POST", "GET"], "backend": "node"}]
METHODS = ("POST", "GET", "POST", "GET")  # GET is idempotent: retried after a reset
# scenario: (backend script, statuses of METHODS' answers, methods the backend saw,
#            routing totals attempts/retries/failures/served, budget requests/retries)
SCENARIOS = {
    "success": ([ok(), ok()], [200, 200, 200, 200], ["POST", "GET", "POST"],
                (3, 0, 0, 3), (3, 0)),
    # BREAKER_FAILURES=2: two failures open the breaker; the next requests get 503 at once
    "a 500": ([httpx.Response(500, json={"e": 1}, headers={"x-b": "1"})],
              [500, 500, 503, 503], ["POST", "GET"], (2, 0, 2, 2), (4, 0)),
    "a 503 then success": ([httpx.Response(503), ok(), ok()], [200, 200, 200, 200],
                           ["POST", "POST", "GET", "POST"], (4, 1, 1, 3), (3, 1)),
    "503s": ([httpx.Response(503)], [503, 503, 503, 503], ["POST", "POST"],
             (2, 1, 2, 0), (4, 1)),
    "a 429 with Retry-After": ([httpx.Response(429, headers={"retry-after": "1"}), ok()],
                               [200, 200, 200, 200], ["POST", "POST", "GET", "POST"],
                               (4, 1, 0, 3), (3, 1)),
    "a timeout": ([httpx.ReadTimeout("slow")], [504, 504, 503, 503], ["POST", "GET"],
                  (2, 0, 2, 0), (4, 0)),
    "a connect error": ([REFUSED], [502, 503, 503, 503], ["POST", "POST"], (2, 1, 2, 0),
                        (4, 1)),
    "a connect error then success": ([REFUSED, ok()], [200, 200, 200, 200],
                                     ["POST", "POST", "GET", "POST"], (4, 1, 1, 3), (3, 1)),
}


async def _run(install, backend, monkeypatch, answers, *, probed_down: bool = False) -> dict:
    routers = []
    real_exchange = upstream.Exchange

    def exchange(router, request):
        if probed_down and not routers:  # the member's last probe failed: strict pass skips it
            now = router.breakers._clock.now()
            router.breakers.probes = {"node": ProbeResult("node", False, now, 1.0)}
        routers.append(router)
        return real_exchange(router, request)

    monkeypatch.setattr(upstream, "Exchange", exchange)
    await install(GATEWAY_ROUTES=json.dumps(ROUTE), BREAKER_FAILURES="2", BREAKER_OPEN_S="60",
                  RETRY_BUDGET_MIN_PER_S="0.1", RETRY_BUDGET_RATIO="0",
                  RATE_LIMIT_ENABLED="false")
    backend.respond = by_host(**{NODE: list(answers)})  # by_host pops: a copy per run
    statuses = []
    for method in METHODS:
        response = await upstream_call(method)
        body = json.loads(await read_body(response) or b"null")
        if isinstance(body, dict) and isinstance(body.get("error"), dict):  # the gateway's
            assert body["error"]["request_id"] == response.headers["x-request-id"]
        statuses.append(response.status_code)
    router = routers[0]
    budget = router.budgets["/infer/node"]
    totals = (await routing_stats())["totals"]
    return {"statuses": statuses, "sent": [r.method for r in backend.seen],
            "totals": tuple(totals[k] for k in ("attempts", "retries", "failures", "served")),
            "fallbacks": totals["fallbacks"], "outstanding": dict(router.outstanding),
            # totals, not per-second buckets: a run that crosses a wall-clock second splits
            # the same requests over two buckets
            "budget": (sum(b[1] for b in budget._buckets), sum(b[2] for b in budget._buckets))}


async def upstream_call(method):
    from function_app.app import proxy

    body = b'{"prompt": "hi"}' if method == "POST" else b""
    return await proxy(make_request(method, "/infer/node", body,
                                    {"content-type": "application/json"}))


@pytest.mark.parametrize("probed_down", [False, True])
@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_a_one_member_plan_retries_and_breaks_as_the_general_loop_does(
        name, probed_down, install, backend, monkeypatch):
    # probed down: the strict pass finds nothing, the non-strict one sends (nothing else
    # passed the probes), with the same answers and counts
    script, statuses, sent, totals, budget = SCENARIOS[name]
    got = await _run(install, backend, monkeypatch, script, probed_down=probed_down)
    assert got == {"statuses": statuses, "sent": sent, "totals": totals, "fallbacks": 0,
                   "outstanding": {"node": 0}, "budget": budget}
