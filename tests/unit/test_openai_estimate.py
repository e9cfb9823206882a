"""Offline token estimates and the request rewrite done before forwarding."""

import json

import pytest

from function_app.core.errors import BadRequest
from function_app.openai.estimate import chat_prompt_tokens, input_tokens, prepare, text_tokens
from function_app.routing.routes import OPENAI_CHAT, OPENAI_COMPLETIONS, OPENAI_EMBEDDINGS


def chat(**extra):
    return {"model": "m", "messages": [{"role": "user", "content": "x" * 10}], **extra}


def test_text_counts_a_token_per_four_characters_rounded_up():
    assert [text_tokens("x" * n) for n in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]


def test_chat_matches_the_simulators_count():
    # services/python/app.py: ceil(chars / 4) + 4 per message
    body = {"messages": [{"role": "system", "content": "abc"},
                         {"role": "user", "content": [{"type": "text", "text": "x" * 9}]}]}
    assert chat_prompt_tokens(body) == (1 + 4) + (3 + 4)


def test_prompt_inputs_of_every_shape():
    assert input_tokens("abcdefgh", "prompt") == 2
    assert input_tokens(["abcd", "efgh"], "input") == 2
    assert input_tokens([1, 2, 3], "input") == 3
    assert input_tokens([[1, 2], [3]], "input") == 3


def test_missing_cap_is_injected_and_reserved():
    prepared = prepare(OPENAI_CHAT, chat(), 100)
    assert prepared.budget == 100 and prepared.estimate == 3 + 4 + 100
    assert json.loads(prepared.body)["max_tokens"] == 100


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_client_cap_is_honoured_and_the_body_untouched(field):
    prepared = prepare(OPENAI_CHAT, chat(**{field: 7}), 100)
    assert prepared.budget == 7 and prepared.body is None


def test_n_choices_multiply_the_budget():
    assert prepare(OPENAI_COMPLETIONS, {"model": "m", "prompt": "hi", "max_tokens": 5, "n": 3},
                   100).budget == 15


def test_stream_without_usage_asks_for_it_and_remembers_the_client_did_not():
    prepared = prepare(OPENAI_CHAT, chat(stream=True, max_tokens=5,
                                         stream_options={"x": 1}), 100)
    sent = json.loads(prepared.body)
    assert sent["stream_options"] == {"x": 1, "include_usage": True}
    assert prepared.stream and not prepared.wants_usage


def test_stream_that_asks_for_usage_is_sent_unchanged():
    prepared = prepare(OPENAI_CHAT, chat(stream=True, max_tokens=5,
                                         stream_options={"include_usage": True}), 100)
    assert prepared.body is None and prepared.wants_usage


def test_embeddings_reserve_the_input_only():
    prepared = prepare(OPENAI_EMBEDDINGS, {"model": "m", "input": ["abcd", "ef"]}, 100)
    assert (prepared.estimate, prepared.body, prepared.stream) == (2, None, False)


@pytest.mark.parametrize("kind, body", [
    (OPENAI_CHAT, {"messages": [{"role": "user", "content": "x"}]}),
    (OPENAI_CHAT, {"model": 3, "messages": [{"role": "user", "content": "x"}]}),
    (OPENAI_CHAT, {"model": "m", "messages": []}),
    (OPENAI_CHAT, {"model": "m", "messages": ["hi"]}),
    (OPENAI_CHAT, chat(max_tokens=0)),
    (OPENAI_CHAT, chat(max_tokens="5")),
    (OPENAI_COMPLETIONS, {"model": "m", "prompt": 5}),
    (OPENAI_EMBEDDINGS, {"model": "m", "input": []}),
])
def test_malformed_requests_are_bad_requests(kind, body):
    with pytest.raises(BadRequest):
        prepare(kind, body, 100)
