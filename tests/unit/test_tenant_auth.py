"""GATEWAY_AUTH through the registered handlers: keys, modes, model access, budgets, caching."""

from __future__ import annotations

import json

import httpx
import pytest

from function_app.adapters.keystore_memory import MemoryKeyStore
from function_app.app import proxy, stats
from function_app.core.clock import SystemClock
from function_app.tenants.keys import generate, key_hash, prefix_of
from function_app.tenants.records import KeyRecord, TenantRecord
from tests.support.handler_calls import make_request, read_json

USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"choices": [], "usage": USAGE})


async def new_key(store: MemoryKeyStore, **fields) -> str:
    key = generate()
    now = SystemClock().now()
    await store.create_key(KeyRecord(key_hash(key), prefix_of(key), fields.pop("tenant", "acme"),
                                     "test", now, **fields))
    return key


def chat(model: str = "sim-python", **extra) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}],
                       **extra}).encode()


async def call(path: str = "/v1/chat/completions", body: bytes | None = None,
               headers: dict | None = None):
    response = await proxy(make_request("POST", path, chat() if body is None else body,
                                        {"content-type": "application/json", **(headers or {})}))
    return response, await read_json(response)


async def test_required_refuses_a_request_without_key_in_both_error_shapes(gw, backend):
    await gw()
    response, body = await call()
    assert response.status_code == 401
    assert body["error"]["code"] == "invalid_api_key" and body["error"]["type"]
    response, body = await call("/infer/python", b"{}")
    assert response.status_code == 401
    assert body["error"]["code"] == "invalid_api_key" and body["error"]["request_id"]
    assert backend.seen == []


async def test_valid_key_reaches_the_backend_without_the_key(gw, backend):
    store = await gw()
    backend.respond = answer
    key = await new_key(store)
    for headers in ({"authorization": f"Bearer {key}"}, {"api-key": key}):
        response, _ = await call(headers=headers)
        assert response.status_code == 200
    for sent in backend.seen:
        assert all(key not in value for value in sent.headers.values())
    operator = await new_key(store, tenant="ops", operator=True)
    by_client = (await read_json(await stats(make_request(
        "GET", "/_gateway/stats", headers={"authorization": f"Bearer {operator}"}))))
    assert "tenant:acme" in by_client["tokens"]["by_client"]


@pytest.mark.parametrize("fields,reason", [
    ({"revoked": True}, "revoked"), ({"expires": 1.0}, "expired"), (None, "unknown")])
async def test_unusable_keys_get_401_naming_only_the_prefix(gw, backend, fields, reason):
    store = await gw()
    key = await new_key(store, **fields) if fields is not None else generate()
    response, body = await call(headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 401
    message = body["error"]["message"]
    assert reason in message and prefix_of(key) in message and key not in message
    assert backend.seen == []


async def test_wrong_model_is_403_in_openai_shape(gw, backend):
    store = await gw()
    key = await new_key(store, models=("sim-node",))
    response, body = await call(headers={"api-key": key})
    assert response.status_code == 403
    assert body["error"]["code"] == "model_not_allowed" and body["error"]["type"]
    assert backend.seen == []
    models = await proxy(make_request("GET", "/v1/models", headers={"api-key": key}))
    assert [m["id"] for m in (await read_json(models))["data"]] == ["sim-node"]


async def test_route_outside_the_keys_routes_is_403(gw, backend):
    store = await gw()
    key = await new_key(store, routes=("/v1/*",))
    response, body = await call("/infer/python", b"{}", {"api-key": key})
    assert response.status_code == 403 and body["error"]["code"] == "forbidden"


async def test_optional_mode_keeps_the_usual_identity_and_foreign_credentials(gw, backend):
    store = await gw(GATEWAY_AUTH="optional")
    backend.respond = answer
    response, _ = await call(headers={"authorization": "Bearer sk-backend-own"})
    assert response.status_code == 200
    assert backend.seen[0].headers["authorization"] == "Bearer sk-backend-own"
    key = await new_key(store)
    response, _ = await call(headers={"authorization": f"Bearer {generate()}"})
    assert response.status_code == 401  # a gateway key that fails is never ignored
    response, _ = await call(headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200


async def test_known_key_is_read_once_and_random_keys_are_bounded(gw, backend):
    store = await gw(GATEWAY_KEY_LOOKUPS_PER_S="5")
    key = await new_key(store)
    for _ in range(20):
        await call("/infer/python", b"{}", {"api-key": key})
    assert store.reads == 1
    statuses = [(await call("/infer/python", b"{}", {"api-key": generate()}))[0].status_code
                for _ in range(30)]
    assert store.reads <= 1 + 5 + 1  # the lookup bucket, plus refill during the loop
    assert set(statuses) == {401, 503}


async def test_key_rps_becomes_a_limit_of_its_own(gw, backend):
    store = await gw()
    key = await new_key(store, rps=0.5, burst=1)
    first, _ = await call("/infer/python", b"{}", {"api-key": key})
    second, body = await call("/infer/python", b"{}", {"api-key": key})
    assert first.status_code == 200
    assert second.status_code == 429 and body["error"]["code"] == "rate_limited"


async def test_daily_budget_answers_budget_exceeded_with_the_reset(gw, backend):
    store = await gw(DEFAULT_MAX_TOKENS="50")
    backend.respond = answer
    key = await new_key(store, daily_tokens=200)
    await store.save_tenant(TenantRecord("acme", 0.0))
    statuses = []
    for _ in range(40):
        response, body = await call(headers={"api-key": key})
        statuses.append(response.status_code)
        if response.status_code != 200:
            break
    assert statuses[-1] == 429 and body["error"]["code"] == "budget_exceeded"
    assert "resets at" in body["error"]["message"] and key not in body["error"]["message"]
    assert int(response.headers["retry-after"]) > 0 and response.headers["x-budget-reset"]
    admitted = statuses.count(200)
    assert admitted * 10 <= 200 + 55  # settled at the usage (10 each), one estimate beyond
    assert admitted >= (200 - 55) // 10


async def test_tenant_budget_is_shared_by_its_keys(gw, backend):
    store = await gw(DEFAULT_MAX_TOKENS="50")
    backend.respond = answer
    await store.save_tenant(TenantRecord("acme", 0.0, daily_tokens=100))
    keys = [await new_key(store), await new_key(store)]
    codes = []
    for i in range(30):
        response, body = await call(headers={"api-key": keys[i % 2]})
        codes.append(body.get("error", {}).get("code"))
        if response.status_code == 429:
            break
    assert codes[-1] == "budget_exceeded" and "tenant acme" in body["error"]["message"]
