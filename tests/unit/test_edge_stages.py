"""The stages that act before the next stage only are plain functions (no coroutine of their
own): they hand back the next stage's awaitable, raise at the call, and do what they did."""

import json

import pytest

from function_app.aoai.inbound import (
    MissingApiVersion,
    azure_paths_stage,
    deployment_model_stage,
)
from function_app.core.errors import InvalidJson, InvalidPath
from function_app.core.identity import ClientIdentity, parse_networks
from function_app.core.json_object import check_json_object
from function_app.core.paths import _JUDGED, JUDGED_PATH_LEN, parse_path, safe_query
from function_app.http.headers import Headers
from function_app.http.messages import GatewayRequest, GatewayResponse
from function_app.stages.errors import errors_stage
from function_app.stages.forwarded import forwarded_stage
from function_app.stages.identity import identity_stage

FORWARDED = [("x-forwarded-for", "203.0.113.9"), ("x-forwarded-host", "evil.example"),
             ("x-forwarded-proto", "https"), ("content-type", "application/json")]


def request(path="/infer/python", query="", headers=(), peer="198.51.100.4"):
    return GatewayRequest("POST", path, query, Headers(headers), b"{}", peer, raw_path=path)


class Next:
    """A next stage that notes the request and returns a marker awaitable."""

    def __init__(self):
        self.seen = []
        self.marker = object()

    def __call__(self, req):
        self.seen.append(req)
        return self.marker


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8"])
def test_an_untrusted_peers_forwarded_fields_are_dropped_before_the_next_stage(trusted):
    following = Next()
    req = request(headers=FORWARDED)
    out = forwarded_stage(parse_networks(trusted))(req, following)
    assert out is following.marker  # the next stage's own awaitable, not one of this stage's
    assert following.seen == [req]
    assert req.headers.names() == ["content-type"]


def test_a_trusted_proxys_forwarded_fields_are_kept():
    following = Next()
    req = request(headers=FORWARDED, peer="10.1.2.3")
    forwarded_stage(parse_networks("10.0.0.0/8"))(req, following)
    assert req.headers == Headers(FORWARDED)


def test_the_identity_stage_names_the_client_before_the_next_stage_runs():
    names = []

    def following(req):
        names.append(req.context.client_id)
        return "next"

    stage = identity_stage(ClientIdentity("address", ()))
    assert stage(request(), following) == "next"
    assert names == ["ip:198.51.100.4"]


def test_the_azure_paths_stage_rewrites_then_hands_over_and_refuses_at_the_call():
    following = Next()
    req = request("/openai/deployments/gpt4o/chat/completions", "api-version=2024-10-21&x=1")
    assert azure_paths_stage(req, following) is following.marker
    assert (req.path, req.raw_path, req.query) == ("/v1/chat/completions",
                                                   "/v1/chat/completions", "x=1")
    assert req.context.deployment == "gpt4o"
    other = request("/infer/python")
    assert azure_paths_stage(other, following) is following.marker
    assert other.path == "/infer/python"
    with pytest.raises(MissingApiVersion):  # raised by the call, before any await
        azure_paths_stage(request("/openai/deployments/gpt4o/embeddings"), following)
    assert len(following.seen) == 2


async def test_a_refusal_raised_at_the_call_is_the_errors_stages_json_answer():
    req = request("/openai/models")
    req.request_id = "rq-7"

    async def never(_):
        raise AssertionError("not reached")

    def chain(r):
        return azure_paths_stage(r, never)

    answer = await errors_stage(req, chain)
    assert answer.status == 400
    assert json.loads(answer.body)["error"]["code"] == "missing_api_version"


def test_the_deployment_stage_puts_the_deployment_in_the_body():
    following = Next()
    req = request()
    req.context.deployment, req.context.json = "gpt4o", {"model": "other", "input": "x"}
    assert deployment_model_stage(req, following) is following.marker
    assert req.context.json == {"model": "gpt4o", "input": "x"}
    assert json.loads(req.body) == {"model": "gpt4o", "input": "x"}
    plain = request()
    plain.context.json = {"model": "m"}
    deployment_model_stage(plain, following)
    assert plain.body == b"{}" and plain.context.json == {"model": "m"}


def test_a_plain_path_is_judged_once_and_the_same_answer_served_after():
    path = "/infer/p12-judged-once"
    first = parse_path(path)
    assert _JUDGED[path] is first
    assert parse_path(path) is first
    assert (first.raw, first.decoded) == (("infer", "p12-judged-once"), path)


@pytest.mark.parametrize("path", ["/a/../b", "/a/./b", "/a/%2e%2e/b", "/a/%2F", "nope"])
def test_a_refused_path_is_refused_every_time_and_never_kept(path):
    for _ in range(2):
        with pytest.raises(InvalidPath):
            parse_path(path)
    assert path not in _JUDGED


def test_an_escaped_or_long_path_is_judged_per_request_and_not_kept():
    escaped = "/infer/a%20b"
    assert parse_path(escaped).decoded == "/infer/a b"
    long = "/infer/" + "x" * JUDGED_PATH_LEN
    assert parse_path(long).decoded == long
    assert escaped not in _JUDGED and long not in _JUDGED


@pytest.mark.parametrize("query,expected", [("", ""), ("a=1&b=%20", "a=1&b=%20"),
                                            ("a=b c#d", "a=b%20c%23d")])
def test_a_query_of_safe_characters_is_kept_and_any_other_is_encoded(query, expected):
    assert safe_query(query) == expected


@pytest.mark.parametrize("body,expected", [
    (b'{"a": 1}', {"a": 1}), (b' \n{"a": 1}\t ', {"a": 1}), (b'{"a": "\\u00e9"}', {"a": "é"}),
])
def test_json_bodies_with_and_without_surrounding_space_or_escapes(body, expected):
    assert check_json_object(body) == expected


@pytest.mark.parametrize("body", [b"", b"   ", b'{"a": 1} x', b'{"a": 1}{}', b'{"a": "\\ud800"}',
                                  b' {"a": 1} 2'])
def test_json_bodies_refused_with_and_without_surrounding_space(body):
    with pytest.raises(InvalidJson):
        check_json_object(body)


def test_a_response_passes_through_the_plain_stages_untouched():
    answer = GatewayResponse(200, Headers([("x", "1")]), b"ok")

    def following(_):
        return answer

    req = request(headers=FORWARDED)
    assert forwarded_stage(())(req, lambda r: identity_stage(ClientIdentity("address", ()))(
        r, lambda q: azure_paths_stage(q, lambda s: deployment_model_stage(s, following)))
    ) is answer
