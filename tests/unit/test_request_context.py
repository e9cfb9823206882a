"""The typed request context and the body type: who sets what, and what happens out of order."""

import httpx
import pytest

from function_app.app import proxy, stats
from function_app.core.errors import PayloadTooLarge
from function_app.core.identity import ClientIdentity
from function_app.core.pipeline import compose
from function_app.http.context import RequestContext, StageOrderError
from function_app.http.headers import Headers
from function_app.http.messages import BodyNotRead, GatewayRequest, GatewayResponse, Unread
from function_app.routing.routes import MATCH, parse_routes
from function_app.routing.stage import routing_stage
from function_app.settings.load import load_settings
from function_app.stages.body import body_stage
from function_app.stages.identity import identity_stage
from tests.support.handler_calls import make_request, read_json


def request(body, path="/infer/python", headers=()):
    return GatewayRequest("POST", path, "", Headers(headers), body, "198.51.100.4",
                          raw_path=path)


def table():
    settings = load_settings({})
    return parse_routes(settings.routes, settings.backends, settings.upstream_timeout_s)


async def through(stages, incoming: GatewayRequest) -> GatewayRequest:
    """Run `stages`; the request as the terminal handler saw it."""
    seen = []

    async def terminal(req):
        seen.append(req)
        return GatewayResponse(200, Headers())

    await compose(stages, terminal)(incoming)
    return seen[0]


async def test_the_body_stage_reads_an_unread_body_once_and_leaves_bytes_and_json():
    reads = []

    async def read(cap):
        reads.append(cap)
        return b'{"prompt": "x"}'

    incoming = request(Unread(read))
    with pytest.raises(BodyNotRead):
        _ = incoming.content
    seen = await through([routing_stage(table()), body_stage(1000)], incoming)
    assert reads == [1000]
    assert seen.body == seen.content == b'{"prompt": "x"}'
    assert seen.context.json == {"prompt": "x"}
    assert MATCH.need(seen.context).route.path == "/infer/python"


async def test_a_reader_that_passes_the_cap_is_refused():
    async def read(cap):
        raise PayloadTooLarge()

    with pytest.raises(PayloadTooLarge):
        await through([routing_stage(table()), body_stage(10)], request(Unread(read)))


async def test_bytes_already_read_are_checked_against_the_cap_too():
    with pytest.raises(PayloadTooLarge):
        await through([routing_stage(table()), body_stage(3)], request(b"0123456789"))


def test_reading_a_field_before_its_stage_ran_is_a_stage_order_error():
    context = RequestContext()
    with pytest.raises(StageOrderError):
        _ = MATCH.need(context)
    with pytest.raises(StageOrderError):
        _ = context.client
    assert MATCH.get(context) is None  # a reader that copes without it asks with get


def test_a_fact_is_kept_per_request_under_its_own_type():
    first, second = RequestContext(), RequestContext()
    match = parse_routes([], {"python": "http://127.0.0.1:1", "node": "http://127.0.0.1:2"},
                         30.0).match("/infer/python", "POST")
    MATCH.set(first, match)
    assert MATCH.need(first) is match and MATCH.get(second) is None


async def test_the_identity_stage_names_the_client_once_for_every_later_stage():
    identity = ClientIdentity("address", ())
    seen = await through([routing_stage(table()), identity_stage(identity)], request(b""))
    assert seen.context.client_id == "ip:198.51.100.4"


async def test_without_rate_limiting_the_token_bill_still_gets_the_named_client(install, backend):
    await install(RATE_LIMIT_ENABLED="false", CLIENT_TPM="6000")
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    backend.respond = lambda r: httpx.Response(200, json={"choices": [], "usage": usage})
    body = b'{"model": "sim-python", "messages": [{"role": "user", "content": "hi"}]}'
    response = await proxy(make_request("POST", "/v1/chat/completions", body,
                                        {"content-type": "application/json"}))
    assert response.status_code == 200
    ledger = (await read_json(await stats(make_request("GET", "/_gateway/stats"))))["tokens"]
    assert list(ledger["by_client"]) == ["ip:198.51.100.4"]
