"""What a refusal says: a cost that can never fit is a 400, a 429 names the limit that refused,
and a backend's usage cannot charge more than the request could have used (issue #22)."""

import json
from types import SimpleNamespace

import httpx
import pytest

from function_app.adapters.limitstore_memory import MemoryRateLimitStore
from function_app.app import proxy, stats
from function_app.core.errors import NeverFits
from function_app.http.context import RequestContext
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.lease.limiter import Limiter
from function_app.ratelimit.limits import Limit, ScopedLimit
from function_app.ratelimit.stage import rate_limit_stage
from function_app.routing.routes import MATCH, parse_routes
from tests.support.clock import FakeClock
from tests.support.handler_calls import make_request, read_json
from tests.unit.test_tenant_auth import call, new_key

JSON = {"content-type": "application/json"}
HUGE = 2**70


def chat(**extra) -> bytes:
    return json.dumps({"model": "sim-python", "messages": [{"role": "user", "content": "hi"}],
                       **extra}).encode()


async def post(path: str, body: bytes, client: str = "198.51.100.7"):
    return await proxy(make_request("POST", path, body, JSON, client=client))


async def token_totals() -> dict:
    return (await read_json(await stats(make_request("GET", "/_gateway/stats"))))["tokens"][
        "totals"]


def usage_backend(usage: dict):
    return lambda request: httpx.Response(200, json={"choices": [], "usage": usage})


async def test_a_request_larger_than_the_request_bucket_is_a_400_not_a_429():
    limiter = Limiter(MemoryRateLimitStore(), FakeClock(), LimiterConfig(), "gw",
                      background=False)
    tiny = [ScopedLimit("client", "c", Limit(1.0, 0.5))]  # an override row may say burst 0.5
    stage = rate_limit_stage(limiter, lambda context: tiny)
    context = RequestContext(client_id="c")
    backends = {"python": "http://127.0.0.1:1", "node": "http://127.0.0.1:2"}
    MATCH.set(context, parse_routes([], backends, 30.0).match("/infer/python", "POST"))
    request = SimpleNamespace(context=context)

    async def call_next(request):
        raise AssertionError("a request that can never fit reached the backend")

    with pytest.raises(NeverFits) as caught:
        await stage(request, call_next)
    assert caught.value.status == 400 and caught.value.code == "exceeds_limit"
    assert "Retry-After" not in caught.value.headers
    blocked = [ScopedLimit("client", "c", Limit(0.0, 0.0))]  # a block stays a 429
    assert (await limiter.acquire(blocked)).reason == "limited"


async def test_a_never_fitting_request_on_an_openai_route_is_an_openai_400(install, backend):
    await install(CLIENT_TPM="100")
    response = await post("/v1/chat/completions", chat(max_tokens=200))
    error = (await read_json(response))["error"]
    assert response.status_code == 400 and "retry-after" not in response.headers
    assert (error["type"], error["code"]) == ("invalid_request_error", "exceeds_limit")
    assert "this client on tokens per min" in error["message"]
    assert backend.seen == []


async def test_huge_reported_usage_charges_the_reservation_and_is_counted(install, backend):
    await install(CLIENT_TPM="6000", MODEL_TPM="6000", DEFAULT_MAX_TOKENS="50")
    backend.respond = usage_backend({"prompt_tokens": HUGE, "completion_tokens": 1})
    assert (await post("/v1/chat/completions", chat())).status_code == 200
    totals = await token_totals()
    assert totals["rejected_usage_requests"] == 1 and totals["prompt_tokens"] == 0
    # the tenant and everyone sharing the model go on being served
    backend.respond = usage_backend({"prompt_tokens": 5, "completion_tokens": 5})
    for client in ("198.51.100.7", "198.51.100.8"):
        response = await post("/v1/chat/completions", chat(), client=client)
        assert response.status_code == 200, await read_json(response)


async def test_usage_the_request_cannot_have_used_is_rejected(install, backend):
    await install(CLIENT_TPM="6000", DEFAULT_MAX_TOKENS="50")
    wrong = [{"prompt_tokens": -5, "completion_tokens": 1},
             {"prompt_tokens": 5, "completion_tokens": -40},  # once read as a refund
             {"prompt_tokens": 5.5, "completion_tokens": 1},
             {"prompt_tokens": "5", "completion_tokens": 1},
             {"prompt_tokens": 5, "completion_tokens": 51},  # max_tokens was 50
             {"prompt_tokens": 100_000, "completion_tokens": 1}]
    for usage in wrong:
        backend.respond = usage_backend(usage)
        assert (await post("/v1/chat/completions", chat())).status_code == 200
    totals = await token_totals()
    assert totals["rejected_usage_requests"] == len(wrong)
    assert totals["refunded_tokens"] == 0 and totals["extra_charged_tokens"] == 0


async def test_a_token_429_names_the_limit_that_refused(gw, backend):
    store = await gw(CLIENT_TPM="100000", DEFAULT_MAX_TOKENS="100")
    key = await new_key(store, tpm=120)
    backend.respond = usage_backend({"prompt_tokens": 5, "completion_tokens": 100})
    auth = {"authorization": f"Bearer {key}"}
    assert (await call(headers=auth))[0].status_code == 200
    response, body = await call(headers=auth)
    message = body["error"]["message"]
    assert response.status_code == 429 and "this API key" in message, message
    assert "client" not in message and "Limit 120," in message
