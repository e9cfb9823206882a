"""routing/target_request.py: what a plain member (no wire of its own) is sent."""

from function_app.http.headers import Headers
from function_app.routing.pools import Member
from function_app.routing.target_request import PlainOutbound


async def test_a_member_with_its_own_key_gets_it_in_place_of_every_client_credential():
    member = Member("gpu", "http://127.0.0.1:9", api_key="k-gpu")
    client = Headers([("authorization", "Bearer client"), ("x-api-key", "c2"),
                      ("cookie", "s=1"), ("accept", "application/json")])
    sent = await PlainOutbound().prepare(member, "/v1/chat/completions", "a=1&api-key=c3&Key=4",
                                         client, b"{}", "m")
    assert sent.headers.get("authorization") == "Bearer k-gpu"
    assert sent.headers.get("x-api-key") is None and sent.headers.get("cookie") is None
    assert sent.headers.get("accept") == "application/json"
    assert sent.query == "a=1" and sent.path == "/v1/chat/completions" and sent.token is None


async def test_anthropic_routes_put_the_key_bare_in_x_api_key():
    member = Member("claude", "http://127.0.0.1:9", api_key="k-a")
    sent = await PlainOutbound().prepare(member, "/v1/messages", "", Headers(
        [("authorization", "Bearer client")]), b"{}", "m", key_header="x-api-key")
    assert sent.headers.get("x-api-key") == "k-a" and sent.headers.get("authorization") is None


async def test_a_member_without_credentials_gets_the_client_request_as_is():
    member = Member("python", "http://127.0.0.1:9")
    client = Headers([("authorization", "Bearer client")])
    sent = await PlainOutbound().prepare(member, "/infer", "key=1", client, b"x", "")
    assert sent.headers is client and sent.query == "key=1" and sent.body == b"x"
    assert PlainOutbound().refused(member, "token") is False
