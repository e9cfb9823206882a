"""The attempt loop through the registered handlers, with fake backends behind the real adapter."""

import asyncio
import json

import httpx

from function_app.app import proxy, stats
from tests.support.handler_calls import make_request, read_body, read_json

JSON = {"content-type": "application/json"}
PY, NODE, PY2 = "127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003"


def by_host(**answers):
    """A backend answering per host:port from a list of answers (or exceptions) each."""
    queues = {host.replace("_", ":"): list(items) for host, items in answers.items()}

    def respond(request: httpx.Request):
        key = f"{request.url.host}:{request.url.port}"
        item = queues[key].pop(0) if len(queues[key]) > 1 else queues[key][0]
        if isinstance(item, Exception):
            raise item
        return item

    return respond


def ok(**body):
    return httpx.Response(200, json=body or {"ok": True})


def hosts(backend) -> list[str]:
    return [f"{r.url.host}:{r.url.port}" for r in backend.seen]


async def routing_stats() -> dict:
    return (await read_json(await stats(make_request("GET", "/_gateway/stats"))))["routing"]


async def infer(path="/infer/python", method="POST"):
    return await proxy(make_request(method, path, b'{"prompt": "hi"}', JSON))


ROUTE_POOL = json.dumps([{"path": "/infer/python", "methods": ["POST", "GET"],
                          "backends": ["python", "python2"], "fallbacks": ["node"]}])
REFUSED = httpx.ConnectError("refused")


async def test_a_503_is_retried_and_the_answer_names_its_backend(install, backend):
    await install()
    backend.respond = by_host(**{PY: [httpx.Response(503), ok()]})
    response = await infer()
    assert response.status_code == 200
    assert response.headers["x-gateway-backend"] == "python"
    assert hosts(backend) == [PY, PY]
    counts = (await routing_stats())["by_route"]["/infer/python"]["python"]
    assert (counts["attempts"], counts["retries"], counts["served"]) == (2, 1, 1)


async def test_infer_python_falls_back_to_node_by_default(install, backend):
    await install()
    backend.respond = by_host(**{PY: [REFUSED], NODE: [ok(node=True)]})
    response = await infer()
    assert response.status_code == 200 and await read_json(response) == {"node": True}
    assert response.headers["x-gateway-backend"] == "node"
    assert hosts(backend) == [PY, PY, NODE]  # a retry on python, then the fallback
    stats_now = (await routing_stats())["by_route"]["/infer/python"]
    assert stats_now["node"]["fallbacks"] == 1 and stats_now["python"]["failures"] == 2


async def test_a_pool_retries_on_its_other_member(install, backend):
    await install(GATEWAY_BACKENDS=json.dumps({"python2": f"http://{PY2}"}),
                  GATEWAY_ROUTES=ROUTE_POOL)
    backend.respond = by_host(**{PY: [REFUSED], PY2: [REFUSED], NODE: [ok()]})
    # whichever member comes first, the retry goes to the other one, then to the fallback
    response = await infer()
    assert response.status_code == 200
    assert sorted(hosts(backend)[:2]) == [PY, PY2] and hosts(backend)[2] == NODE


async def test_a_post_reset_before_any_answer_is_not_resent_unless_the_route_allows(
        install, backend):
    routes = [{"path": "/infer/python", "methods": ["POST"], "backend": "python",
               "upstream_path": "/infer"}]
    await install(GATEWAY_ROUTES=json.dumps(routes))
    backend.respond = by_host(**{PY: [httpx.ReadError("reset"), ok()]})
    response = await infer()
    assert response.status_code == 502 and len(backend.seen) == 1
    backend.seen.clear()
    backend.respond = by_host(**{PY: [REFUSED, ok()]})  # refused: it never saw the request
    assert (await infer()).status_code == 200 and len(backend.seen) == 2


async def test_an_idempotent_route_resends_a_post_after_a_reset(install, backend):
    await install()
    backend.respond = by_host(**{PY: [httpx.ReadError("reset"), ok()]})
    assert (await infer()).status_code == 200 and hosts(backend) == [PY, PY]


async def test_an_exhausted_budget_refuses_retries_and_counts_it(install, backend):
    routes = [{"path": "/infer/node", "methods": ["POST"], "backend": "node", "idempotent": True}]
    await install(GATEWAY_ROUTES=json.dumps(routes), RETRY_BUDGET_MIN_PER_S="0.1",
                  RETRY_BUDGET_RATIO="0")
    backend.respond = by_host(**{NODE: [httpx.Response(503)]})
    statuses = [(await infer("/infer/node")).status_code for _ in range(3)]
    assert statuses == [503, 503, 503]
    assert len(backend.seen) == 4  # one retry (0.1/s x 10 s), then none
    counts = (await routing_stats())["by_route"]["/infer/node"]["node"]
    assert (counts["retries"], counts["budget_refusals"]) == (1, 2)


async def test_a_retry_after_beyond_the_deadline_is_not_waited_for(install, backend):
    routes = [{"path": "/infer/node", "methods": ["POST"], "backend": "node", "timeout_s": 1}]
    await install(GATEWAY_ROUTES=json.dumps(routes))
    backend.respond = by_host(**{NODE: [httpx.Response(429, headers={"retry-after": "30"})]})
    response = await infer("/infer/node")
    assert response.status_code == 429 and response.headers["retry-after"] == "30"
    assert len(backend.seen) == 1


async def test_each_attempt_has_its_own_timeout_inside_the_deadline(install, backend):
    routes = [{"path": "/slow", "methods": ["GET"], "backend": "node", "timeout_s": 20,
               "attempt_timeout_s": 0.2}]
    await install(GATEWAY_ROUTES=json.dumps(routes))
    calls = []

    async def respond(request):
        calls.append(request)
        if len(calls) == 1:
            await asyncio.sleep(30)
        return ok()

    backend.respond = respond
    response = await proxy(make_request("GET", "/slow"))
    assert response.status_code == 200 and len(calls) == 2


async def test_retries_never_charge_the_rate_limit_twice(install, backend):
    await install(CLIENT_RPS="0.001", CLIENT_BURST="2", GLOBAL_RPS="0")
    backend.respond = by_host(**{PY: [httpx.Response(503), httpx.Response(503), ok()],
                                 NODE: [ok()]})
    first, second = await infer(), await infer()
    assert (first.status_code, second.status_code) == (200, 200)  # 3 attempts, 2 charged
    assert (await infer()).status_code == 429


async def test_an_open_breaker_sends_nothing_and_answers_503(install, backend):
    routes = [{"path": "/infer/node", "methods": ["POST"], "backend": "node"}]
    await install(GATEWAY_ROUTES=json.dumps(routes), BREAKER_FAILURES="2", BREAKER_OPEN_S="60")
    backend.respond = by_host(**{NODE: [REFUSED]})
    assert (await infer("/infer/node")).status_code == 502  # two refusals: it opens
    response = await infer("/infer/node")
    assert response.status_code == 503
    assert (await read_json(response))["error"]["code"] == "no_healthy_backend"
    assert len(backend.seen) == 2
    assert (await routing_stats())["breakers"]["states"]["node"] == "open"


def chat(model: str, **extra) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}],
                       **extra}).encode()


async def test_a_model_falls_back_to_another_model_with_the_request_rewritten(install, backend):
    models = {"big": {"backends": "python", "fallbacks": ["small"]}, "small": "node"}
    await install(MODEL_ROUTES=json.dumps(models), MODEL_API_KEYS=json.dumps({"node": "k-n"}))
    backend.respond = by_host(**{PY: [httpx.Response(429)], NODE: [ok(model="small")]})
    response = await proxy(make_request("POST", "/v1/chat/completions", chat("big"),
                                        {**JSON, "authorization": "Bearer client"}))
    assert response.status_code == 200 and response.headers["x-gateway-backend"] == "node"
    first, last = backend.seen[0], backend.seen[-1]
    assert json.loads(first.content)["model"] == "big"
    assert first.headers["authorization"] == "Bearer client"
    assert json.loads(last.content)["model"] == "small" and last.url.path == "/v1/chat/completions"
    assert last.headers["authorization"] == "Bearer k-n"


async def test_context_length_errors_fall_back_only_when_asked(install, backend):
    for fallback_on, status in ((["5xx"], 400), (["context_length"], 200)):
        too_long = httpx.Response(400, json={"error": {"code": "context_length_exceeded"}})
        models = {"short": {"backends": "python", "fallbacks": ["long"],
                            "fallback_on": fallback_on}, "long": "node"}
        await install(MODEL_ROUTES=json.dumps(models))
        backend.respond = by_host(**{PY: [too_long], NODE: [ok()]})
        response = await proxy(make_request("POST", "/v1/chat/completions", chat("short"), JSON))
        assert response.status_code == status
        if status == 400:
            assert b"context_length_exceeded" in await read_body(response)


async def test_a_stream_cut_after_its_first_byte_ends_with_an_openai_error_event(
        install, backend):
    await install()
    pieces = [b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n',
              b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n']

    async def events():
        for piece in pieces:
            yield piece
        raise httpx.ReadError("backend died")

    backend.respond = lambda r: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=events())
    response = await proxy(make_request("POST", "/v1/chat/completions",
                                        chat("sim-python", stream=True), JSON))
    assert response.status_code == 200
    body = await read_body(response)
    assert body.startswith(pieces[0] + pieces[1]) and len(backend.seen) == 1  # no retry
    last = body.strip().split(b"\n\n")[-1]
    error = json.loads(last.removeprefix(b"data: "))["error"]
    assert error["code"] == "upstream_unavailable" and error["type"] == "server_error"
    tokens = (await read_json(await stats(make_request("GET", "/_gateway/stats"))))["tokens"]
    assert tokens["by_client"]["ip:198.51.100.4"]["sim-python"]["completion_tokens"] == 2


def test_an_attempt_arms_its_own_timeout_only_when_it_is_nearer_than_the_exchanges():
    from function_app.routing.member_attempt import _attempt_bound

    assert _attempt_bound(None, 5.0) is None  # the Upstream's timeout_s is the one bound
    assert _attempt_bound(9.0, 5.0) is None
    assert _attempt_bound(2.0, 5.0) == 2.0  # a route's shorter attempt_timeout_s
    assert _attempt_bound(None, -0.1) == -0.1  # no time left: times out at once, as before


async def test_without_an_attempt_timeout_the_routes_deadline_alone_ends_a_silent_backend(
        install, backend):
    # the attempt arms no timer of its own here: the adapter's one deadline must answer 504.
    routes = [{"path": "/slow", "methods": ["GET"], "backend": "node", "timeout_s": 0.3}]
    await install(GATEWAY_ROUTES=json.dumps(routes))

    async def respond(request):
        await asyncio.sleep(30)

    backend.respond = respond
    response = await proxy(make_request("GET", "/slow"))
    assert response.status_code == 504
    assert (await read_json(response))["error"]["code"] == "upstream_timeout"
