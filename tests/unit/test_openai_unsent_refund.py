"""A completion no backend was asked for charges no tokens (found by the fuzzer, issue 22).

With every breaker of a model open the gateway answers 503 `no_healthy_backend` at once, but the
reservation made before it was kept ("the backend may have worked"), so each refused request
spent its whole estimate: the fuzzer's bursts on a small daily budget got `budget_exceeded` with
nothing admitted while the hostile backend's breaker was open, and any tenant retrying through an
outage drained its budget and TPM without a single backend call.
"""

import json

import httpx

from function_app.app import proxy
from tests.support.handler_calls import make_request, read_json

MODEL = "sim"
ROUTES = json.dumps({MODEL: "http://127.0.0.1:9201"})


def chat():
    body = json.dumps({"model": MODEL, "max_tokens": 4,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    return proxy(make_request("POST", "/v1/chat/completions", body,
                              {"content-type": "application/json"}))


async def test_requests_refused_with_every_breaker_open_keep_no_tokens(install, backend):
    backend.respond = lambda request: httpx.Response(503, json={"error": {"message": "down"}})
    # 9 tokens reserved a request (4 + 1 prompt, 4 completion): 100 a minute fits 11 of them
    await install(MODEL_ROUTES=ROUTES, BREAKER_FAILURES="1", BREAKER_OPEN_S="600",
                  CLIENT_TPM="100", MODEL_TPM="0")
    assert (await chat()).status_code == 503  # the backend's own 503 opens the breaker
    codes = []
    for _ in range(30):
        response = await chat()
        codes.append((response.status_code, (await read_json(response))["error"]["code"]))
    assert codes == [(503, "no_healthy_backend")] * 30
    assert len(backend.seen) == 1
