"""Azure backends through the registered handlers: deployment paths, Entra tokens and their
refresh after a 401, and priority pools that spill over on a 429 and honour its Retry-After."""

import json

import httpx
import pytest

from function_app import app as app_module
from function_app.adapters.httpx_upstream import HttpxUpstream
from function_app.app import proxy
from function_app.settings.load import load_settings
from function_app.wiring.build import build_gateway
from tests.support.handler_calls import make_request, read_json

JSON = {"content-type": "application/json"}
PTU, PAYG = "127.0.0.1:9101", "127.0.0.1:9102"


def azure(host: str, deployment: str) -> dict:
    return {"url": f"http://{host}", "api": "azure", "auth": "entra",
            "api_version": "2024-10-21", "deployment": deployment}


POOL = {"gpt-4o": {"backends": [{"backend": "ptu", "priority": 0},
                                {"backend": "payg", "priority": 1, "weight": 2}]}}
BACKENDS = {"ptu": azure(PTU, "gpt4o-ptu"), "payg": azure(PAYG, "gpt4o-paygo")}


class FakeTokens:
    """A TokenProvider handing out numbered tokens; `invalidate` records what was refused."""

    def __init__(self):
        self.count, self.refused = 0, []

    async def token(self, scope: str) -> str:
        return f"tok-{self.count}@{scope}"

    def invalidate(self, scope: str, value: str) -> None:
        self.refused.append(value)
        self.count += 1


@pytest.fixture
async def gateway(backend):
    tokens = FakeTokens()

    async def _install(**environ: str):
        env = {"GATEWAY_BACKENDS": json.dumps(BACKENDS), "MODEL_ROUTES": json.dumps(POOL),
               **environ}
        upstream = HttpxUpstream(httpx.MockTransport(backend))
        app_module.gateway.install(await build_gateway(load_settings(env), upstream=upstream,
                                                       tokens=tokens))
        return tokens

    yield _install
    await app_module.gateway.aclose()


def chat(**headers: str):
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": 4}).encode()
    return proxy(make_request("POST", "/v1/chat/completions", body, {**JSON, **headers}))


def answer(status: int = 200, **headers: str) -> httpx.Response:
    usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    body = {"choices": [{"message": {"content": "x"}}], "usage": usage} if status == 200 else \
        {"error": {"code": str(status), "message": "no"}}
    return httpx.Response(status, json=body, headers=headers)


def host(request: httpx.Request) -> str:
    return f"{request.url.host}:{request.url.port}"


async def test_a_request_reaches_the_deployment_with_a_token_and_no_client_key(gateway, backend):
    await gateway()
    backend.respond = lambda request: answer()
    response = await chat(authorization="Bearer sk-client", **{"api-key": "client-key"})
    assert response.status_code == 200
    sent = backend.seen[0]
    assert host(sent) == PTU
    assert sent.url.path == "/openai/deployments/gpt4o-ptu/chat/completions"
    assert sent.url.params["api-version"] == "2024-10-21"
    assert sent.headers["authorization"].startswith("Bearer tok-0@https://cognitiveservices")
    assert "api-key" not in sent.headers and "sk-client" not in str(sent.headers)


async def test_a_401_drops_the_token_and_is_sent_once_more_with_a_new_one(gateway, backend):
    tokens = await gateway()
    replies = [answer(401), answer()]
    backend.respond = lambda request: replies.pop(0)
    response = await chat()
    assert response.status_code == 200
    assert [r.headers["authorization"][:12] for r in backend.seen] == \
        ["Bearer tok-0", "Bearer tok-1"]
    assert tokens.refused == [backend.seen[0].headers["authorization"][7:]]


async def test_a_second_401_is_given_to_the_client_without_a_third_attempt(gateway, backend):
    await gateway(MODEL_ROUTES=json.dumps({"gpt-4o": "ptu"}))
    backend.respond = lambda request: answer(401)
    response = await chat()
    assert response.status_code == 401 and len(backend.seen) == 2


async def test_a_429_spills_to_priority_1_at_once_and_the_member_waits_its_time(gateway, backend):
    await gateway()
    ptu_calls = []

    def respond(request):
        if host(request) == PTU:
            ptu_calls.append(request)
            return answer(429, **{"retry-after-ms": "30000", "retry-after": "30"})
        return answer()

    backend.respond = respond
    served = [(await chat()).headers["x-gateway-backend"] for _ in range(5)]
    assert served == ["payg"] * 5
    assert len(ptu_calls) == 1  # the cool-down held it out for the next four
    assert backend.seen[1].url.path == "/openai/deployments/gpt4o-paygo/chat/completions"


async def test_every_member_out_gives_429_with_the_shortest_wait(gateway, backend):
    await gateway()
    waits = {PTU: "4000", PAYG: "9000"}
    backend.respond = lambda request: answer(429, **{"retry-after-ms": waits[host(request)]})
    first = await chat()
    assert first.status_code == 429  # the pool's last answer, with the pool's shortest wait
    assert 3000 < int(first.headers["retry-after-ms"]) <= 4000
    seen = len(backend.seen)
    second = await chat()
    assert second.status_code == 429 and len(backend.seen) == seen  # nobody was asked
    assert (await read_json(second))["error"]["code"] == "rate_limit_exceeded"
    assert second.headers["retry-after"] == "4"


async def test_a_content_filter_400_passes_through_and_is_not_retried(gateway, backend):
    await gateway()
    body = {"error": {"code": "content_filter", "message": "filtered",
                      "innererror": {"code": "ResponsibleAIPolicyViolation"}}}
    backend.respond = lambda request: httpx.Response(400, json=body)
    response = await chat()
    assert response.status_code == 400 and len(backend.seen) == 1
    assert (await read_json(response))["error"]["code"] == "content_filter"


async def test_a_proxy_route_to_a_backend_with_credentials_sends_them_not_the_clients(
        gateway, backend):
    routes = [{"path": "/aoai/*", "methods": ["GET"], "backend": "ptu", "upstream_path": "/x"}]
    await gateway(GATEWAY_ROUTES=json.dumps(routes))
    backend.respond = lambda request: httpx.Response(200, json={})
    response = await proxy(make_request("GET", "/aoai/y", headers={"api-key": "client-key"}))
    assert response.status_code == 200
    sent = backend.seen[0]
    assert sent.url.path == "/x/y" and "api-key" not in sent.headers
    assert sent.headers["authorization"].startswith("Bearer tok-0")


async def test_the_backends_lower_remaining_count_reaches_the_client(gateway, backend):
    await gateway()
    backend.respond = lambda request: answer(**{"x-ratelimit-remaining-requests": "3",
                                                "x-ratelimit-remaining-tokens": "99999999"})
    response = await chat()
    assert response.headers["x-ratelimit-remaining-requests"] == "3"  # Azure's, the tighter
    assert "x-ratelimit-limit-requests" not in response.headers
    assert int(response.headers["x-ratelimit-remaining-tokens"]) < 99999999  # the gateway's
    assert response.headers["x-ratelimit-limit-tokens"]


async def test_a_token_that_never_comes_is_a_502_within_the_deadline(backend):
    import asyncio

    class Stuck:
        async def token(self, scope):
            await asyncio.sleep(3600)

        def invalidate(self, scope, value):
            pass

    models = json.dumps({"gpt-4o": "ptu"})
    routes = json.dumps([{"path": "/v1/chat/completions", "methods": ["POST"],
                          "kind": "openai.chat", "json_body": True, "timeout_s": 0.3}])
    env = {"GATEWAY_BACKENDS": json.dumps(BACKENDS), "MODEL_ROUTES": models,
           "GATEWAY_ROUTES": routes}
    upstream = HttpxUpstream(httpx.MockTransport(backend))
    app_module.gateway.install(await build_gateway(load_settings(env), upstream=upstream,
                                                   tokens=Stuck()))
    try:
        response = await chat()
        assert response.status_code == 502 and backend.seen == []
        assert (await read_json(response))["error"]["code"] == "backend_auth_unavailable"
    finally:
        await app_module.gateway.aclose()


async def test_a_pool_whose_breakers_opened_on_failures_is_a_503_not_a_429(gateway, backend):
    await gateway(BREAKER_FAILURES="1", BREAKER_OPEN_S="60")
    backend.respond = lambda request: answer(503)
    assert (await chat()).status_code == 503  # both members failed: both breakers open
    assert len(backend.seen) == 2
    response = await chat()
    assert response.status_code == 503
    assert (await read_json(response))["error"]["code"] == "no_healthy_backend"


async def test_the_token_goes_only_to_entra_members_and_a_key_only_to_its_own(gateway, backend):
    plain, keyed = "127.0.0.1:9103", "127.0.0.1:9104"
    backends = {**BACKENDS, "plain": f"http://{plain}",
                "keyed": {"url": f"http://{keyed}", "api": "azure", "auth": "key",
                          "key_setting": "AOAI_KEY", "api_version": "v1"}}
    pool = {"gpt-4o": {"backends": [{"backend": "ptu", "priority": 0},
                                    {"backend": "plain", "priority": 1},
                                    {"backend": "keyed", "priority": 2}]}}
    await gateway(GATEWAY_BACKENDS=json.dumps(backends), MODEL_ROUTES=json.dumps(pool),
                  RETRY_MAX_ATTEMPTS="3", AOAI_KEY="k-azure")
    backend.respond = lambda request: answer(429, **{"retry-after-ms": "5000"})
    await chat(authorization="Bearer sk-client")
    to_ptu, to_plain, to_keyed = backend.seen
    assert to_ptu.headers["authorization"].startswith("Bearer tok-")
    assert to_plain.headers["authorization"] == "Bearer sk-client"  # as before: no token
    assert to_keyed.headers["api-key"] == "k-azure" and "authorization" not in to_keyed.headers
    assert to_keyed.url.path == "/openai/v1/chat/completions"


async def test_healthz_does_not_probe_azure_resources(gateway, backend):
    from function_app.app import healthz

    await gateway()
    backend.respond = lambda request: httpx.Response(200, json={"ok": True})
    report = await read_json(await healthz(make_request("GET", "/healthz")))
    assert set(report["backends"]) == {"python", "node"}
    assert all(host(r) not in (PTU, PAYG) for r in backend.seen)
