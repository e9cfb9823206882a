"""The completion cache on the agents' APIs (POST /v1/messages, POST /v1/responses), through
the registered handlers with a fake backend that speaks both, over the in-memory tiers."""

import json

import httpx
import pytest

from function_app.app import proxy, stats
from tests.support.handler_calls import make_request, read_body, read_json

JSON = {"content-type": "application/json"}
VERSION = {"anthropic-version": "2023-06-01"}
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "sim-python",
           "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
           "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 2}}
RESPONSE = {"id": "resp_1", "object": "response", "status": "completed", "model": "sim-python",
            "output": [{"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": "hi"}]}],
            "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}}


def event(name: str, **data) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


MESSAGE_EVENTS = [
    event("message_start", message={**MESSAGE, "content": [], "stop_reason": None,
                                    "usage": {"input_tokens": 5, "output_tokens": 1}}),
    event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    event("content_block_delta", index=0, delta={"type": "text_delta", "text": "hi"}),
    event("content_block_stop", index=0),
    event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2}),
]
MESSAGE_STOP = event("message_stop")
RESPONSE_EVENTS = [
    event("response.created", response={**RESPONSE, "status": "in_progress", "output": [],
                                        "usage": None}),
    event("response.output_text.delta", item_id="m1", output_index=0, content_index=0,
          delta="hi"),
]
RESPONSE_DONE = event("response.completed", response=RESPONSE)


class AgentsBackend:
    """Answers /v1/messages and /v1/responses, plain or streamed; `finish` False cuts a
    stream before its final event."""

    def __init__(self, finish: bool = True):
        self.calls = 0
        self.finish = finish
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.seen.append(request)
        body = json.loads(request.content)
        messages = request.url.path == "/v1/messages"
        if not body.get("stream"):
            return httpx.Response(200, json=MESSAGE if messages else RESPONSE)
        events = MESSAGE_EVENTS if messages else RESPONSE_EVENTS
        last = MESSAGE_STOP if messages else RESPONSE_DONE

        async def stream():
            for piece in events:
                yield piece
            if self.finish:
                yield last

        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=stream())


def message(**extra) -> bytes:
    return json.dumps({"model": "sim-python", "max_tokens": 20,
                       "messages": [{"role": "user", "content": "hi"}], **extra}).encode()


def response(**extra) -> bytes:
    return json.dumps({"model": "sim-python", "input": "hi", "store": False, **extra}).encode()


async def post(body: bytes, path: str = "/v1/messages", client: str = "198.51.100.4",
               **headers):
    if path == "/v1/messages":
        headers = {**VERSION, **headers}
    return await proxy(make_request("POST", path, body, {**JSON, **headers}, client=client))


@pytest.fixture
async def fake(install, backend):
    async def _install(responder=None, **env):
        responder = responder or AgentsBackend()
        backend.respond = responder
        await install(**{"CACHE_COMPLETIONS": "sim-python", **env})
        return responder

    return _install


async def test_a_repeated_message_is_a_hit_with_the_stored_answer(fake):
    upstream = await fake()
    first = await post(message())
    assert first.status_code == 200 and await read_json(first) == MESSAGE
    same = b'{ "messages":[{"content":"hi","role":"user"}], "model":"sim-python",\n' \
           b' "max_tokens": 20 }'
    second = await post(same)
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert await read_json(second) == MESSAGE and upstream.calls == 1


async def test_a_message_stream_is_replayed_event_by_event_once_it_stopped(fake):
    upstream = await fake()
    first = await read_body(await post(message(stream=True)))
    assert first == b"".join([*MESSAGE_EVENTS, MESSAGE_STOP])
    again = await post(message(stream=True))
    assert again.headers["x-cache"] == "HIT"
    assert again.headers["content-type"].startswith("text/event-stream")
    assert [chunk async for chunk in again.body_iterator] == [*MESSAGE_EVENTS, MESSAGE_STOP]
    assert upstream.calls == 1


async def test_a_plain_message_is_not_made_from_a_stored_stream_nor_the_reverse(fake):
    upstream = await fake()
    await read_body(await post(message(stream=True)))
    plain = await post(message())
    assert plain.headers["x-cache"] == "MISS" and await read_json(plain) == MESSAGE
    streamed = await post(message(stream=True))
    assert streamed.headers["x-cache"] == "MISS"  # the plain answer replaced the stream
    await read_body(streamed)
    assert upstream.calls == 3


async def test_a_message_stream_cut_before_message_stop_is_not_stored(fake):
    upstream = await fake(AgentsBackend(finish=False))
    await read_body(await post(message(stream=True)))
    again = await post(message(stream=True))
    assert again.headers["x-cache"] == "MISS"
    await read_body(again)
    assert upstream.calls == 2


async def test_the_anthropic_version_is_part_of_the_key(fake):
    upstream = await fake()
    await read_body(await post(message()))
    other = await post(message(), **{"anthropic-version": "2024-01-01"})
    assert other.headers["x-cache"] == "MISS"
    await read_body(other)
    beta = await post(message(), **{"anthropic-beta": "tools-2024"})
    assert beta.headers["x-cache"] == "MISS"
    await read_body(beta)
    assert (await post(message())).headers["x-cache"] == "HIT"
    assert upstream.calls == 3


async def test_messages_are_per_client_key_unless_shared(fake):
    upstream = await fake()
    await read_body(await post(message(), **{"x-api-key": "key-a"}))
    other = await post(message(), **{"x-api-key": "key-b"})
    assert other.headers["x-cache"] == "MISS"
    await read_body(other)
    assert (await post(message(), **{"x-api-key": "key-a"})).headers["x-cache"] == "HIT"
    assert upstream.calls == 2


async def test_a_message_hit_charges_its_prompt_only(fake):
    await fake()
    await read_body(await post(message()))
    await read_body(await post(message()))
    totals = (await read_json(await stats(make_request("GET", "/_gateway/stats"))))[
        "tokens"]["totals"]
    assert totals["prompt_tokens"] == 10 and totals["completion_tokens"] == 2


async def test_a_private_message_answer_is_not_stored(fake, backend):
    upstream = await fake()
    backend.respond = lambda request: (upstream(request), httpx.Response(
        200, json=MESSAGE, headers={"cache-control": "private"}))[1]
    await read_body(await post(message()))
    again = await post(message())
    assert again.headers["x-cache"] == "MISS"
    await read_body(again)
    assert upstream.calls == 2


async def test_a_stateless_response_is_a_hit_plain_and_streamed(fake):
    upstream = await fake()
    first = await read_json(await post(response(), "/v1/responses"))
    hit = await post(response(), "/v1/responses")
    assert hit.headers["x-cache"] == "HIT" and (await read_json(hit))["output"] == \
        first["output"]
    await read_body(await post(response(stream=True), "/v1/responses"))
    again = await post(response(stream=True), "/v1/responses")
    assert again.headers["x-cache"] == "HIT"
    replayed = [chunk async for chunk in again.body_iterator]
    assert replayed == [*RESPONSE_EVENTS, RESPONSE_DONE]
    assert upstream.calls == 2


async def test_a_replayed_response_id_names_nothing_the_client_can_fetch(fake):
    await fake()
    miss = await read_json(await post(response(), "/v1/responses"))
    hit = await read_json(await post(response(), "/v1/responses"))
    # The miss's id is tagged with its backend and client; the entry holds the backend's own.
    assert miss["id"].startswith("resp_1-gw") and hit["id"] == "resp_1"
    fetched = await proxy(make_request("GET", f"/v1/responses/{hit['id']}"))
    assert fetched.status_code == 404


@pytest.mark.parametrize("extra", [{"store": True}, {}, {"store": False, "background": True}])
async def test_stateful_responses_are_never_cached(fake, extra):
    """`store` defaults to true: only an explicit false is stateless."""
    upstream = await fake()
    body = json.dumps({"model": "sim-python", "input": "hi", **extra}).encode()
    for _ in range(2):
        answer = await post(body, "/v1/responses")
        assert answer.headers["x-cache"] == "BYPASS"
        await read_body(answer)
    assert upstream.calls == 2


async def test_a_response_stream_without_response_completed_is_not_stored(fake):
    upstream = await fake(AgentsBackend(finish=False))
    await read_body(await post(response(stream=True), "/v1/responses"))
    again = await post(response(stream=True), "/v1/responses")
    assert again.headers["x-cache"] == "MISS"
    await read_body(again)
    assert upstream.calls == 2


async def test_a_bad_cache_header_on_messages_is_refused_in_anthropics_shape(fake):
    upstream = await fake()
    answer = await post(message(), **{"x-gateway-cache": "always"})
    body = await read_json(answer)
    assert answer.status_code == 400 and upstream.calls == 0
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "x-gateway-cache" in body["error"]["message"]


async def test_shared_messages_serve_other_clients_but_not_from_a_credentialed_request(fake):
    upstream = await fake(CACHE_COMPLETIONS_SHARED="true")
    await read_body(await post(message(), client="198.51.100.4"))
    assert (await post(message(), client="198.51.100.5")).headers["x-cache"] == "HIT"
    keyed = message(system="with a key")
    await read_body(await post(keyed, **{"x-api-key": "key-a"}))
    other = await post(keyed, client="198.51.100.5")
    assert other.headers["x-cache"] == "MISS"  # not public: no shared entry from a keyed one
    await read_body(other)
    assert upstream.calls == 3
