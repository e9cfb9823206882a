"""The rate-limit stage through the registered handlers, with the in-memory limiter store."""

import json

from function_app.app import healthz, proxy, stats
from function_app.ratelimit.headers import rate_limit_headers
from function_app.ratelimit.limits import Decision, Limit
from tests.support.handler_calls import make_request, read_json

POST = {"content-type": "application/json"}
BODY = b'{"prompt": "x"}'


async def test_admitted_answers_carry_the_rate_limit_headers(install):
    await install(CLIENT_RPS="5", CLIENT_BURST="5", GLOBAL_RPS="1000", GLOBAL_BURST="1000")
    response = await proxy(make_request("POST", "/infer/python", BODY, POST))
    assert response.status_code == 200
    headers = response.headers
    assert headers["ratelimit-scope"] == "client"
    assert headers["ratelimit-policy"] == '"client";q=5;w=1'
    assert headers["x-ratelimit-limit"] == "5"
    assert headers["ratelimit"].startswith('"client";r=')
    assert int(headers["x-ratelimit-remaining"]) <= 4


async def test_over_the_client_limit_is_a_json_429_with_retry_after(install, backend):
    await install(CLIENT_RPS="1", CLIENT_BURST="3")
    statuses = []
    for _ in range(6):
        response = await proxy(make_request("POST", "/infer/python", BODY, POST))
        statuses.append(response.status_code)
    assert statuses[:3] == [200, 200, 200] and set(statuses[3:]) == {429}
    body = await read_json(response)
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["ratelimit-scope"] == "client"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert len(backend.seen) == 3  # denied requests never reach the backend


async def test_clients_have_their_own_buckets(install):
    await install(CLIENT_RPS="1", CLIENT_BURST="1")
    first = await proxy(make_request("POST", "/infer/python", BODY, POST, client="198.51.100.1"))
    other = await proxy(make_request("POST", "/infer/python", BODY, POST, client="198.51.100.2"))
    again = await proxy(make_request("POST", "/infer/python", BODY, POST, client="198.51.100.1"))
    assert (first.status_code, other.status_code, again.status_code) == (200, 200, 429)


async def test_global_limit_decides_when_it_is_the_tighter(install):
    await install(GLOBAL_RPS="1", GLOBAL_BURST="2", CLIENT_RPS="100", CLIENT_BURST="100")
    codes = [(await proxy(make_request("POST", "/infer/python", BODY, POST,
                                       client=f"198.51.100.{i}"))).status_code for i in range(4)]
    assert codes == [200, 200, 429, 429]


async def test_healthz_answers_with_the_limit_spent_and_spends_nothing(install):
    await install(GLOBAL_RPS="1", GLOBAL_BURST="1")
    spent = [(await proxy(make_request("POST", "/infer/python", BODY, POST))).status_code
             for _ in range(2)]
    assert spent == [200, 429]  # the global bucket is empty
    checks = [await healthz(make_request("GET", "/healthz")) for _ in range(5)]
    assert [c.status_code for c in checks] == [200] * 5
    assert not any(name in c.headers for c in checks for name in ("ratelimit", "retry-after"))
    counters = json.loads((await stats(make_request("GET", "/_gateway/stats"))).body)
    assert counters["limiter"]["decisions"] == 2  # health checks never reached the limiter


async def test_disabled_limits_send_no_headers(install):
    await install(RATE_LIMIT_ENABLED="false", CLIENT_RPS="1", CLIENT_BURST="1")
    responses = [await proxy(make_request("POST", "/infer/python", BODY, POST)) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "ratelimit" not in responses[-1].headers


async def test_stats_count_decisions(install):
    await install(CLIENT_RPS="1", CLIENT_BURST="1")
    for _ in range(3):
        await proxy(make_request("POST", "/infer/python", BODY, POST))
    counters = json.loads((await stats(make_request("GET", "/_gateway/stats"))).body)
    assert counters["limiter"]["admitted"] == 1
    assert counters["limiter"]["denied"] == 2


def test_headers_follow_the_draft_syntax():
    decision = Decision(True, scope="global", limit=Limit(10, 50), remaining=7, reset_s=4.2)
    assert dict(rate_limit_headers(decision)) == {
        "RateLimit-Policy": '"global";q=50;w=5', "RateLimit": '"global";r=7;t=5',
        "RateLimit-Scope": "global", "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": "5"}


def test_no_limit_means_no_headers():
    assert rate_limit_headers(Decision(True, reason="disabled")) == []


async def test_shadow_limits_report_but_never_deny(install, backend):
    await install(CLIENT_RPS="1", CLIENT_BURST="2", RATE_LIMIT_SHADOW_SCOPES="client")
    responses = [await proxy(make_request("POST", "/infer/python", BODY, POST)) for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5
    assert responses[-1].headers["ratelimit-scope"] == "client"
    assert len(backend.seen) == 5
