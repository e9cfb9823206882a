"""Azure-style client paths through the registered handlers, against a fake OpenAI backend."""

import json

import httpx

from function_app.app import proxy
from tests.support.handler_calls import make_request, read_json

JSON = {"content-type": "application/json"}
CHAT = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}).encode()


def usage_answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    return httpx.Response(200, json={"model": body.get("model"), "path": request.url.path,
                                     "query": str(request.url.query, "ascii"),
                                     "usage": {"prompt_tokens": 5, "completion_tokens": 3}})


async def test_a_deployment_path_is_served_as_its_openai_twin(install, backend):
    await install(MODEL_ROUTES=json.dumps({"gpt4o": "http://127.0.0.1:8001"}))
    backend.respond = usage_answer
    response = await proxy(make_request(
        "POST", "/openai/deployments/gpt4o/chat/completions", CHAT, JSON,
        query="api-version=2024-10-21"))
    assert response.status_code == 200
    seen = await read_json(response)
    assert seen == {"model": "gpt4o", "path": "/v1/chat/completions", "query": "",
                    "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
    assert response.headers["x-ratelimit-limit-tokens"]  # the token limits applied


async def test_the_deployment_wins_over_the_bodys_model(install, backend):
    await install(MODEL_ROUTES=json.dumps({"gpt4o": "http://127.0.0.1:8001"}))
    backend.respond = usage_answer
    body = json.dumps({"model": "other", "input": "x"}).encode()
    response = await proxy(make_request("POST", "/openai/deployments/gpt4o/embeddings", body,
                                        JSON, query="api-version=2024-10-21"))
    assert (await read_json(response))["model"] == "gpt4o"


async def test_a_deployment_path_without_api_version_is_refused(install, backend):
    await install(MODEL_ROUTES=json.dumps({"gpt4o": "http://127.0.0.1:8001"}))
    for query in ("", "api-version=a%26b"):
        response = await proxy(make_request(
            "POST", "/openai/deployments/gpt4o/chat/completions", CHAT, JSON, query=query))
        assert response.status_code == 400
        assert (await read_json(response))["error"]["code"] == "missing_api_version"
    assert backend.seen == []


async def test_the_v1_surface_and_an_unknown_deployment(install, backend):
    await install(MODEL_ROUTES=json.dumps({"gpt4o": "http://127.0.0.1:8001"}))
    backend.respond = usage_answer
    body = json.dumps({"model": "gpt4o", "messages": [{"role": "user", "content": "x"}]})
    response = await proxy(make_request("POST", "/openai/v1/chat/completions", body.encode(),
                                        JSON))
    assert (await read_json(response))["path"] == "/v1/chat/completions"
    missing = await proxy(make_request("POST", "/openai/deployments/nope/chat/completions",
                                       CHAT, JSON, query="api-version=2024-10-21"))
    assert missing.status_code == 404
    assert (await read_json(missing))["error"]["code"] == "model_not_found"


async def test_the_azure_model_list_is_the_gateways(install, backend):
    await install(MODEL_ROUTES=json.dumps({"gpt4o": "http://127.0.0.1:8001"}))
    response = await proxy(make_request("GET", "/openai/models", query="api-version=2024-10-21"))
    assert [m["id"] for m in (await read_json(response))["data"]] == ["gpt4o"]
    assert backend.seen == []
