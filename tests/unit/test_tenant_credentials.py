"""Exactly one credential is judged (issue 22, item 3): any other gateway key anywhere in the
request is a 401 that reaches no backend, and a backend with its own key sees no client
credential at all."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from function_app.app import proxy
from function_app.tenants.keys import generate
from function_app.tenants.presented import MISPLACED, SEVERAL, presented
from tests.support.handler_calls import make_request, read_json
from tests.unit.test_tenant_auth import answer, chat, new_key

JSON = ("content-type", "application/json")


async def send(headers: list[tuple[str, str]], path: str = "/v1/chat/completions",
               query: str = ""):
    response = await proxy(make_request("POST", path, chat(), [JSON, *headers], query=query))
    return response, await read_json(response)


def assert_refused(response, body, backend, *secrets: str) -> None:
    assert response.status_code == 401, body
    error = body["error"]
    # OpenAI's error shape has no request_id field: the id is the X-Request-ID header.
    assert error["code"] == "invalid_api_key" and response.headers["x-request-id"]
    assert all(secret not in json.dumps(body) for secret in secrets)
    assert backend.seen == []


def smuggled(key: str, other: str) -> list[tuple[list[tuple[str, str]], str, str]]:
    """(headers, path, query): a valid `key` in Authorization, `other` somewhere else."""
    bearer = ("authorization", f"Bearer {key}")
    return [
        ([bearer, ("api-key", other)], "/v1/chat/completions", ""),
        ([bearer, ("authorization", f"Bearer {other}")], "/v1/chat/completions", ""),
        ([bearer, ("x-api-key", other)], "/v1/chat/completions", ""),
        ([bearer, ("x-custom", f"note {other}")], "/v1/chat/completions", ""),
        ([bearer, ("cookie", f"session={other}")], "/v1/chat/completions", ""),
        ([bearer], "/v1/chat/completions", f"api-key={other}"),
        ([bearer], "/v1/chat/completions", f"x={quote(other, safe='')}".replace("_", "%5F")),
        ([("api-key", key), ("authorization", f"Basic {other}")], "/v1/chat/completions", ""),
    ]


@pytest.mark.parametrize("case", range(8))
async def test_a_second_gateway_key_anywhere_is_refused_and_never_forwarded(gw, backend, case):
    store = await gw()
    backend.respond = answer
    key, other = await new_key(store), await new_key(store, tenant="other")
    headers, path, query = smuggled(key, other)[case]
    response, body = await send(headers, path, query)
    assert_refused(response, body, backend, key, other)


async def test_a_key_misplaced_alone_is_refused_too(gw, backend):
    store = await gw(GATEWAY_AUTH="optional")  # not taken for "no key": it would be forwarded
    key = await new_key(store)
    for headers, query in (([("x-goog-api-key", key)], ""), ([], f"key={key}"),
                           ([("authorization", f"Bearer {key} trailing")], "")):
        response, body = await send(headers, query=query)
        assert_refused(response, body, backend, key)
    response, body = await send([], path=f"/v1/{key}/chat/completions")
    assert response.status_code in (401, 404) and key not in json.dumps(body)
    assert backend.seen == []


async def test_the_same_key_in_both_key_headers_is_one_credential(gw, backend):
    store = await gw()
    backend.respond = answer
    key = await new_key(store)
    response, _ = await send([("authorization", f"Bearer {key}"), ("api-key", key)])
    assert response.status_code == 200
    assert all(key not in value for value in backend.seen[0].headers.values())


async def test_optional_foreign_bearer_beside_a_revoked_key_is_refused(gw, backend):
    store = await gw(GATEWAY_AUTH="optional")
    backend.respond = answer
    revoked = await new_key(store, revoked=True)
    response, body = await send([("authorization", "Bearer sk-backend-own"),
                                 ("api-key", revoked)])
    assert_refused(response, body, backend, revoked)
    assert "revoked" in body["error"]["message"]


async def test_optional_a_key_with_a_broken_checksum_is_not_anonymous(gw, backend):
    await gw(GATEWAY_AUTH="optional")
    key = generate()
    broken = key[:-1] + ("A" if key[-1] != "A" else "B")
    response, body = await send([("api-key", broken)])
    assert_refused(response, body, backend, broken)
    assert "malformed" in body["error"]["message"]


async def test_a_backend_with_its_own_key_sees_no_client_credential(gw, backend):
    store = await gw(GATEWAY_AUTH="optional", MODEL_API_KEYS='{"python": "backend-own-key"}')
    backend.respond = answer
    key = await new_key(store)
    client = [("authorization", f"Bearer {key}"), ("x-api-key", "sk-client-x"),
              ("cookie", "session=client"), ("ocp-apim-subscription-key", "client-sub")]
    response, _ = await send(client[:1], query="api-version=1&api-key=sk-client-q")
    assert response.status_code == 200
    response, _ = await send([("api-key", "sk-client-a"), *client[1:]], query="Api%2DKey=q")
    assert response.status_code == 200
    for sent in backend.seen:
        assert sent.headers.get_list("authorization") == ["Bearer backend-own-key"]
        for name in ("api-key", "x-api-key", "cookie", "ocp-apim-subscription-key"):
            assert name not in sent.headers
        assert "sk-client" not in str(sent.url) and "key=" not in str(sent.url).lower()
    assert "api-version=1" in str(backend.seen[0].url)


def test_presented_judges_places_not_values():
    key, other = generate(), generate()
    assert presented([("authorization", f"bearer  {key} ")]).key == key
    assert presented([("api-key", key)], "/v1/x", "a=1").key == key
    assert presented([("authorization", "Bearer sk-x"), ("x-api-key", "plain")]).key is None
    assert presented([("api-key", key), ("api-key", other)]).problem == SEVERAL
    assert presented([("api-key", key)], query=f"k={other}").problem == MISPLACED
    assert presented([], "/p/" + key.replace("_", "%5f")).problem == MISPLACED


async def test_a_backend_url_with_userinfo_is_its_own_credential(install, backend):
    routes = {"gpu": "http://svc%40x:pa55w0rd@gpu.internal:8000/v1"}
    await install(MODEL_ROUTES=json.dumps(routes))
    backend.respond = answer
    response = await proxy(make_request("POST", "/v1/chat/completions", chat("gpu"),
                                        [JSON, ("authorization", "Bearer sk-client"),
                                         ("x-api-key", "sk-c2")]))
    assert response.status_code == 200, await read_json(response)
    sent = backend.seen[-1]
    assert sent.headers.get_list("authorization") == ["Basic c3ZjQHg6cGE1NXcwcmQ="]
    assert "x-api-key" not in sent.headers
    assert sent.url.host == "gpu.internal" and "pa55w0rd" not in str(sent.url)
