"""What an OpenAI request may cost in tokens, estimated offline before it is forwarded.

No tokenizer is fetched or shipped: a text of n characters counts ceil(n / 4) tokens (OpenAI's
rule of thumb for English; the simulators count the same way), each chat message 4 more (role
and separators), a list of token ids its length, and anything else (images, tools, function
definitions) a quarter of its JSON length. The completion budget is max_completion_tokens or
max_tokens, else `default_max_tokens`, which is then injected as max_tokens so the backend
cannot exceed what was reserved; times `n` when several choices are asked for. The reservation
is prompt estimate + budget; the real usage settles it afterwards.

`prepare` also asks a stream for its usage (stream_options.include_usage) when the client did
not, so a stream can be reconciled; the usage-only chunk is then removed on the way back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..core.errors import BadRequest
from ..routing.routes import OPENAI_CHAT, OPENAI_EMBEDDINGS

CHARS_PER_TOKEN = 4
MESSAGE_TOKENS = 4


@dataclass(frozen=True)
class Prepared:
    """A checked request: `body` is the bytes to send upstream, None when unchanged."""

    model: str
    stream: bool
    wants_usage: bool  # the client itself asked for the usage chunk of a stream
    prompt_tokens: int
    budget: int  # completion tokens reserved
    body: bytes | None

    @property
    def estimate(self) -> int:
        return self.prompt_tokens + self.budget


def text_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def _json_tokens(value: Any) -> int:
    return text_tokens(json.dumps(value, separators=(",", ":")))


def _content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):  # parts: text counted as text, the rest by JSON size
        return sum(text_tokens(p["text"]) if isinstance(p, dict) and isinstance(
            p.get("text"), str) else _json_tokens(p) for p in content)
    return _json_tokens(content)


def chat_prompt_tokens(body: dict) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.")
    total = 0
    for message in messages:
        if not isinstance(message, dict):
            raise BadRequest("Each message must be an object.")
        total += MESSAGE_TOKENS + _content_tokens(message.get("content"))
        for extra in ("name", "tool_calls", "function_call"):
            if extra in message:
                total += _content_tokens(message[extra])
    for extra in ("tools", "functions", "response_format"):
        if extra in body:
            total += _json_tokens(body[extra])
    return total


def input_tokens(value: Any, field: str) -> int:
    """A prompt or embedding input: text, list of texts, token ids or lists of token ids."""
    if isinstance(value, str):
        return text_tokens(value)
    if isinstance(value, list) and value:
        if all(isinstance(item, int) for item in value):
            return len(value)
        return sum(input_tokens(item, field) for item in value)
    raise BadRequest(f"'{field}' must be a string, an array of strings or of token ids.")


def _positive_int(body: dict, field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"'{field}' must be a positive integer.")
    return value


def prepare(kind: str, body: dict, default_max_tokens: int) -> Prepared:
    """Check `body` for endpoint `kind`, estimate it and rewrite it if needed (BadRequest)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("You must provide a model parameter.")
    if kind == OPENAI_EMBEDDINGS:
        return Prepared(model, False, False, input_tokens(body.get("input"), "input"), 0, None)
    prompt = chat_prompt_tokens(body) if kind == OPENAI_CHAT \
        else input_tokens(body.get("prompt"), "prompt")
    changed = False
    budget = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    if budget is None:
        budget, body, changed = default_max_tokens, {**body, "max_tokens": default_max_tokens}, True
    stream = body.get("stream") is True
    options = body.get("stream_options")
    wants_usage = isinstance(options, dict) and options.get("include_usage") is True
    if stream and not wants_usage:
        extra = options if isinstance(options, dict) else {}
        body, changed = {**body, "stream_options": {**extra, "include_usage": True}}, True
    choices = _positive_int(body, "n") or 1
    encoded = json.dumps(body, separators=(",", ":")).encode() if changed else None
    return Prepared(model, stream, wants_usage, prompt, budget * choices, encoded)
