"""Completions between their two wire forms (cache/replay.py)."""

import json

from function_app.cache.replay import DONE, assemble, completed, synthesize


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


HEAD = {"id": "cmpl-1", "object": "text_completion", "created": 3, "model": "m"}
USAGE = {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}


def test_a_text_completion_stream_assembles_per_choice():
    events = [event({**HEAD, "choices": [{"index": 0, "text": "a", "finish_reason": None},
                                         {"index": 1, "text": "x", "finish_reason": None}]}),
              event({**HEAD, "choices": [{"index": 0, "text": "b", "finish_reason": "length"},
                                         {"index": 1, "text": "y", "finish_reason": "stop"}]}),
              event({**HEAD, "choices": [], "usage": USAGE}), DONE]
    answer = json.loads(assemble(events, chat=False))
    assert answer["object"] == "text_completion" and answer["usage"] == USAGE
    assert [(c["text"], c["finish_reason"]) for c in answer["choices"]] == [
        ("ab", "length"), ("xy", "stop")]


def test_a_plain_text_completion_becomes_events_ending_in_done():
    plain = {**HEAD, "choices": [{"index": 0, "text": "hello", "logprobs": None,
                                  "finish_reason": "stop"}], "usage": USAGE}
    events = synthesize(json.dumps(plain).encode(), chat=False)
    assert completed(events) and all(e.endswith(b"\n\n") for e in events)
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    assert "".join(c["text"] for p in payloads for c in p["choices"]) == "hello"
    assert payloads[-1]["usage"] == USAGE
    assert json.loads(assemble(events, chat=False))["choices"][0]["text"] == "hello"


def test_tool_calls_and_logprobs_are_not_rebuilt():
    tool = {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"name": "f"}}]},
            "finish_reason": None}
    assert assemble([event({**HEAD, "choices": [tool]}), DONE], chat=True) is None
    plain = {**HEAD, "choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                          "tool_calls": [{"id": "t"}]},
                                  "finish_reason": "tool_calls"}]}
    assert synthesize(json.dumps(plain).encode(), chat=True) is None
    logprobs = {**HEAD, "choices": [{"index": 0, "text": "a", "logprobs": {"x": 1}}]}
    assert synthesize(json.dumps(logprobs).encode(), chat=False) is None


def test_garbage_is_not_replayed():
    assert synthesize(b"not json", chat=True) is None
    assert assemble([b"data: {broken\n\n", DONE], chat=True) is None
    assert not completed([event(HEAD)])
