"""The Responses and Messages wire formats: estimates, usage, first-event judgement, ids."""

from __future__ import annotations

import json

import pytest

from function_app.anthropic import errors as anthropic_errors
from function_app.anthropic.estimate import prepare_message
from function_app.anthropic.stream import MessageTap
from function_app.anthropic.usage import body_usage
from function_app.core.errors import BadRequest, UpstreamError
from function_app.core.upstream import UpstreamResponse
from function_app.http.headers import Headers
from function_app.openai import response_events
from function_app.openai.early import peek
from function_app.openai.response_ids import IdRewriter, resolve, tag
from function_app.openai.responses import prepare_response
from function_app.openai.usage import Usage, find_usage
from function_app.routing.pools import Member


def event(name: str, **data) -> bytes:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


async def body_of(pieces: list[bytes]):
    for piece in pieces:
        yield piece


async def drain(answer: UpstreamResponse) -> bytes:
    return b"".join([chunk async for chunk in answer.body])


# --- estimates -------------------------------------------------------------------------------

def test_response_estimate_counts_input_items_and_instructions_and_injects_the_budget():
    body = {"model": "m", "instructions": "be brief", "stream": True,
            "input": [{"role": "user", "content": "abcdefgh"},
                      {"type": "function_call_output", "call_id": "c", "output": "x"}]}
    prepared = prepare_response(body, 100)
    item = -(-len(json.dumps(body["input"][1], separators=(",", ":"))) // 4)
    assert prepared.prompt_tokens == 2 + 4 + 2 + item and prepared.budget == 100
    sent = json.loads(prepared.body)
    assert sent["max_output_tokens"] == 100 and "stream_options" not in sent


def test_response_estimate_keeps_the_clients_budget_and_refuses_bad_input():
    assert prepare_response({"model": "m", "input": "abcd", "max_output_tokens": 7}, 100
                            ).body is None
    for bad in ({"model": "m"}, {"model": "m", "input": []},
                {"model": "m", "input": "x", "max_output_tokens": 0}, {"input": "x"}):
        with pytest.raises(BadRequest):
            prepare_response(bad, 100)


def test_message_estimate_needs_max_tokens_and_counts_system_and_blocks():
    body = {"model": "m", "max_tokens": 9, "system": "abcd",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}]}
    prepared = prepare_message(body)
    assert (prepared.prompt_tokens, prepared.budget) == (1 + 4 + 2, 9)
    assert prepare_message({**body, "max_tokens": None}, count_only=True).budget == 0
    with pytest.raises(BadRequest):
        prepare_message({**body, "max_tokens": None})


# --- usage -----------------------------------------------------------------------------------

def test_responses_usage_with_cached_and_reasoning_details():
    body = (b'{"id":"resp_1","usage":{"input_tokens":100,"input_tokens_details":'
            b'{"cached_tokens":60},"output_tokens":30,"output_tokens_details":'
            b'{"reasoning_tokens":12},"total_tokens":130}}')
    assert find_usage(body) == Usage(100, 30, 60, 12)
    chat = b'{"usage":{"prompt_tokens":5,"completion_tokens":2,"prompt_tokens_details":' \
           b'{"cached_tokens":9}}}'
    assert find_usage(chat) == Usage(5, 2, 5, 0)  # cached never above the prompt


def test_anthropic_usage_adds_cache_reads_to_the_prompt():
    body = json.dumps({"usage": {"input_tokens": 10, "cache_read_input_tokens": 90,
                                 "cache_creation_input_tokens": 5, "output_tokens": 7}})
    assert body_usage(body.encode()) == Usage(105, 7, 90)


MESSAGE_STREAM = b"".join([
    event("message_start", message={"id": "msg_1", "usage": {
        "input_tokens": 10, "cache_read_input_tokens": 40, "output_tokens": 1}}),
    event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
    event("ping"),
    event("content_block_delta", index=0, delta={"type": "text_delta", "text": "hi"}),
    event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 12}),
    event("message_stop"),
])


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_message_tap_forwards_every_byte_and_joins_start_and_delta_usage(size):
    tap = MessageTap()
    out = b"".join(tap.feed(piece) for piece in chunked(MESSAGE_STREAM, size)) + tap.flush()
    assert out == MESSAGE_STREAM and tap.usage == Usage(50, 12, 40)


def test_message_tap_has_no_usage_before_message_delta():
    tap = MessageTap()
    tap.feed(MESSAGE_STREAM.split(b"event: content_block_delta")[0])
    assert tap.usage is None


# --- first events ----------------------------------------------------------------------------

PREAMBLE = event("response.created", response={"id": "resp_1", "usage": None}) + \
    event("response.in_progress", response={"id": "resp_1"})


@pytest.mark.parametrize("size", [3, 50, 10_000])
async def test_a_healthy_stream_is_replayed_byte_for_byte(size):
    stream = PREAMBLE + event("response.output_text.delta", delta="hi") + b"tail"
    answer, failure = await peek(UpstreamResponse(200, Headers(), body_of(chunked(stream, size))),
                                 response_events.judge)
    assert failure is None and answer.status == 200 and await drain(answer) == stream


@pytest.mark.parametrize(("code", "status"), [("server_error", 502),
                                              ("rate_limit_exceeded", 429),
                                              ("invalid_prompt", 400)])
async def test_response_failed_first_becomes_its_status_in_openai_shape(code, status):
    failed = event("response.failed", response={"id": "resp_1", "error": {
        "code": code, "message": "nope"}})
    answer, failure = await peek(UpstreamResponse(200, Headers(), body_of([PREAMBLE, failed])),
                                 response_events.judge)
    assert failure is not None and answer.status == failure.status == status
    kind = "tokens" if status == 429 else "invalid_request_error" if status == 400 \
        else "server_error"
    assert json.loads(await drain(answer))["error"] == {
        "message": "nope", "type": kind, "param": None, "code": code}


async def test_anthropic_overloaded_first_is_a_retryable_status_with_its_type():
    stream = event("message_start", message={"id": "m"}) + event(
        "error", error={"type": "overloaded_error", "message": "Overloaded"})
    answer, failure = await peek(UpstreamResponse(200, Headers(), body_of([stream])),
                                 anthropic_errors.judge)
    assert failure is not None and answer.status == failure.status == 503
    assert json.loads(await drain(answer))["error"]["type"] == "overloaded_error"


def test_error_events_after_the_first_byte_are_each_apis_own():
    openai_event = response_events.error_event(UpstreamError())
    assert b"event: error\ndata: " in openai_event
    assert json.loads(openai_event.split(b"data: ")[1])["type"] == "error"
    anthropic_event = json.loads(anthropic_errors.error_event(UpstreamError()).split(b"data: ")[1])
    assert anthropic_event["error"]["type"] == "api_error"


# --- stored-response ids ---------------------------------------------------------------------

MEMBERS = [Member("a", "http://a"), Member("b", "http://b")]


def test_a_tagged_id_resolves_to_its_member_for_its_client_only():
    tagged = tag(b"k", "b", "tenant:x", "resp_123")
    bound = resolve(b"k", tagged, "tenant:x", MEMBERS)
    assert bound is not None and (bound.upstream_id, bound.member.name) == ("resp_123", "b")
    assert resolve(b"k", tagged, "tenant:y", MEMBERS) is None  # another tenant
    assert resolve(b"other", tagged, "tenant:x", MEMBERS) is None  # another secret
    assert resolve(b"k", "resp_123", "tenant:x", MEMBERS) is None  # not one of ours
    forged = tagged[:-1] + ("1" if tagged[-1] == "0" else "0")
    assert resolve(b"k", forged, "tenant:x", MEMBERS) is None


def test_id_rewriter_tags_the_response_id_and_the_previous_one_only():
    rewrite = IdRewriter(b"k", "a", "c", previous="resp_old")
    first = rewrite(b'data: {"response":{"id": "resp_new","previous_response_id":"resp_old",'
                    b'"output":[{"id":"msg_1"}]}}\n\n')
    later = rewrite(b'data: {"response":{"id":"resp_new"}}\n\n')
    new, old = tag(b"k", "a", "c", "resp_new"), tag(b"k", "a", "c", "resp_old")
    assert f'"{new}"'.encode() in first and f'"{old}"'.encode() in first
    assert b'"msg_1"' in first and f'"{new}"'.encode() in later


def test_an_id_that_would_change_the_upstream_path_never_resolves():
    for hostile in ("..", "x?admin=1", "a.b", "%2e%2e", ""):
        forged = tag(b"k", "a", "c", hostile)  # a valid MAC: the secret is known or empty
        assert resolve(b"k", forged, "c", MEMBERS) is None


async def test_a_responses_stream_cut_after_its_first_byte_ends_with_its_error_event():
    from function_app.http.messages import GatewayResponse
    from function_app.openai.bill import Bill, Wire, settle_on_answer
    from function_app.openai.ledger import TokenLedger

    async def broken():
        yield PREAMBLE
        yield event("response.output_text.delta", delta="one")
        yield event("response.output_text.delta", delta=" two")
        raise UpstreamError()

    bill = Bill(None, [], TokenLedger(), "c", "m", 100, prompt_tokens=10)
    answer = GatewayResponse(200, Headers([("content-type", "text/event-stream")]), broken())
    wire = Wire(error_event=response_events.error_event)
    out = b"".join([c async for c in settle_on_answer(answer, bill, True, False, wire).body])
    assert out.startswith(PREAMBLE) and out.rstrip().split(b"\n\n")[-1].startswith(
        b"event: error")
    assert bill.usage == Usage(10, 2)  # the prompt and the two deltas that went out
