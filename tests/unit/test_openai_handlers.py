"""The OpenAI routes through the registered handlers, with a fake backend behind the adapter."""

import json

import httpx

from function_app import app as app_module
from function_app.app import proxy, stats
from function_app.settings.load import load_settings
from function_app.wiring.build import build_gateway
from tests.support.handler_calls import make_request, read_body, read_json
from tests.support.upstream_memory import MemoryUpstream, Reply

JSON = {"content-type": "application/json"}
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
PIECES = [b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n',
          b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n']
USAGE_EVENT = b'data: {"choices":[],"usage":' + json.dumps(USAGE).encode() + b"}\n\n"


def chat(**extra) -> bytes:
    return json.dumps({"model": "sim-python", "messages": [{"role": "user", "content": "hi"}],
                       **extra}).encode()


def answer(request: httpx.Request) -> httpx.Response:
    """A backend that streams when asked (usage chunk only on include_usage)."""
    body = json.loads(request.content)
    if not body.get("stream"):
        return httpx.Response(200, json={"choices": [], "usage": USAGE})

    async def events():
        for piece in PIECES:
            yield piece
        if (body.get("stream_options") or {}).get("include_usage"):
            yield USAGE_EVENT
        yield b"data: [DONE]\n\n"

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=events())


async def tokens() -> dict:
    return (await read_json(await stats(make_request("GET", "/_gateway/stats"))))["tokens"]


async def post(path: str, body: bytes, headers: dict | None = None):
    return await proxy(make_request("POST", path, body, {**JSON, **(headers or {})}))


async def test_plain_completion_is_routed_by_model_and_reconciled(install, backend):
    await install(DEFAULT_MAX_TOKENS="50", CLIENT_TPM="6000")
    backend.respond = answer
    response = await post("/v1/chat/completions", chat())
    assert response.status_code == 200 and (await read_json(response))["usage"] == USAGE
    sent = backend.seen[0]
    assert str(sent.url) == "http://127.0.0.1:8001/v1/chat/completions"
    assert json.loads(sent.content)["max_tokens"] == 50
    assert response.headers["x-ratelimit-limit-tokens"] == "6000"
    assert response.headers["x-ratelimit-remaining-tokens"] == str(6000 - (1 + 4 + 50))
    assert response.headers["x-ratelimit-limit-requests"] == "1000"
    totals = (await tokens())["totals"]
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (7, 3)
    assert totals["refunded_tokens"] == 55 - 10
    second = await post("/v1/chat/completions", chat())
    remaining = int(second.headers["x-ratelimit-remaining-tokens"])
    # The first one now costs its usage only (charged its 55 reserved, it would leave at most
    # 5890); the bucket refills 100 tokens/s on the real clock, which may already have paid
    # the first one's 10 back on a slow machine.
    assert 6000 - 10 - 55 - 1 <= remaining <= 6000 - 55


async def test_stream_gets_usage_upstream_and_the_client_does_not_see_it(install, backend):
    await install()
    backend.respond = answer
    response = await post("/v1/chat/completions", chat(stream=True))
    chunks = [chunk async for chunk in response.body_iterator]
    assert chunks == [*PIECES, b"data: [DONE]\n\n"]  # event by event, usage chunk removed
    assert json.loads(backend.seen[0].content)["stream_options"] == {"include_usage": True}
    assert (await tokens())["by_client"]["ip:198.51.100.4"]["sim-python"] == {
        "requests": 1, "prompt_tokens": 7, "completion_tokens": 3}


async def test_stream_that_asked_for_usage_keeps_the_usage_chunk(install, backend):
    await install()
    backend.respond = answer
    body = chat(stream=True, stream_options={"include_usage": True}, max_tokens=5)
    response = await post("/v1/chat/completions", body)
    assert USAGE_EVENT in await read_body(response)
    assert backend.seen[0].content == body  # nothing to rewrite: sent as it came


async def test_a_stream_closed_early_closes_upstream_and_keeps_the_charge():
    upstream = MemoryUpstream(Reply(200, [("content-type", "text/event-stream")], PIECES))
    gateway = await build_gateway(load_settings({}), upstream=upstream)
    app_module.gateway.install(gateway)
    try:
        response = await post("/v1/chat/completions", chat(stream=True, max_tokens=9))
        iterator = response.body_iterator
        assert await anext(iterator) == PIECES[0]
        await iterator.aclose()  # what the host does when the client goes away
        assert upstream.answers[0].closed and upstream.open == 0
        totals = (await tokens())["totals"]
        assert (totals["unreconciled_requests"], totals["kept_tokens"]) == (1, 1 + 4 + 9)
    finally:
        await app_module.gateway.aclose()


async def test_unknown_model_is_an_openai_404(install, backend):
    await install()
    response = await post("/v1/chat/completions", chat(model="gpt-9"))
    body = await read_json(response)
    assert response.status_code == 404 and backend.seen == []
    assert body == {"error": {"message": "The model 'gpt-9' does not exist.",
                              "type": "invalid_request_error", "param": None,
                              "code": "model_not_found"}}
    assert response.headers["x-request-id"]


async def test_default_backend_serves_unrouted_models(install, backend):
    await install(DEFAULT_MODEL_BACKEND="http://127.0.0.1:9999/v1")
    backend.respond = answer
    await post("/v1/completions", json.dumps({"model": "x", "prompt": "p"}).encode())
    assert str(backend.seen[0].url) == "http://127.0.0.1:9999/v1/completions"


async def test_malformed_bodies_are_openai_400s(install, backend):
    await install()
    for body in (b"{nope", b"[1]", b'{"model": "sim-python"}'):
        response = await post("/v1/chat/completions", body)
        error = (await read_json(response))["error"]
        assert response.status_code == 400 and error["type"] == "invalid_request_error"
        assert set(error) == {"message", "type", "param", "code"}
    assert backend.seen == []


async def test_token_limit_429_is_openai_shaped_with_retry_headers(install, backend):
    await install(CLIENT_TPM="120")
    backend.respond = lambda r: httpx.Response(200, json={"usage": {
        "prompt_tokens": 5, "completion_tokens": 100}})
    assert (await post("/v1/chat/completions", chat(max_tokens=100))).status_code == 200
    response = await post("/v1/chat/completions", chat(max_tokens=100))
    error = (await read_json(response))["error"]
    assert response.status_code == 429 and len(backend.seen) == 1
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert int(response.headers["retry-after"]) >= 1
    assert int(response.headers["retry-after-ms"]) > 0
    assert response.headers["x-ratelimit-limit-tokens"] == "120"
    assert response.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_request_limit_429_on_openai_routes_says_requests(install, backend):
    await install(CLIENT_RPS="1", CLIENT_BURST="1")
    backend.respond = answer
    await post("/v1/chat/completions", chat())
    response = await post("/v1/chat/completions", chat())
    assert response.status_code == 429
    assert (await read_json(response))["error"]["type"] == "requests"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"


async def test_configured_key_replaces_the_clients_credential(install, backend):
    await install(MODEL_API_KEYS='{"python": "backend-key"}')
    backend.respond = answer
    await post("/v1/chat/completions", chat(), {"authorization": "Bearer client-key"})
    await post("/v1/chat/completions", chat(model="sim-node"),
               {"authorization": "Bearer client-key"})
    assert backend.seen[0].headers.get_list("authorization") == ["Bearer backend-key"]
    assert backend.seen[1].headers["authorization"] == "Bearer client-key"  # no key: passed


async def test_backend_error_passes_through_and_refunds(install, backend):
    await install(CLIENT_TPM="6000")
    backend.respond = lambda r: httpx.Response(
        503, json={"error": {"message": "busy", "type": "server_error", "code": None}})
    response = await post("/v1/chat/completions", chat(max_tokens=20))
    assert response.status_code == 503
    assert (await read_json(response))["error"]["message"] == "busy"
    assert (await tokens())["totals"]["failed_requests"] == 1


async def test_models_are_listed_from_the_table(install, backend):
    await install(MODEL_ROUTES='{"llama3": "http://127.0.0.1:11434/v1", "tiny": "node"}')
    listing = await read_json(await proxy(make_request("GET", "/v1/models")))
    assert [m["id"] for m in listing["data"]] == ["llama3", "tiny"]
    one = await proxy(make_request("GET", "/v1/models/tiny"))
    assert (await read_json(one))["id"] == "tiny"
    missing = await proxy(make_request("GET", "/v1/models/gpt-9"))
    assert missing.status_code == 404 and backend.seen == []


async def test_gateway_errors_elsewhere_keep_the_gateway_shape(install):
    await install()
    response = await proxy(make_request("GET", "/nowhere"))
    assert (await read_json(response))["error"]["code"] == "not_found"
    openai = await proxy(make_request("GET", "/v1/nowhere"))
    assert (await read_json(openai))["error"]["type"] == "invalid_request_error"
