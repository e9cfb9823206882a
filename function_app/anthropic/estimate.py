"""What a Messages request may cost in tokens, estimated offline (the rules of
openai/estimate.py: ceil(characters / 4) per text, 4 more per message, a quarter of the JSON
length for anything else). The completion budget is `max_tokens`, which the Messages API
requires: a request without it is refused here as the API would refuse it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import BadRequest
from ..openai.estimate import MESSAGE_TOKENS, _json_tokens, text_tokens


@dataclass(frozen=True)
class PreparedMessage:
    model: str
    stream: bool
    prompt_tokens: int
    budget: int

    @property
    def estimate(self) -> int:
        return self.prompt_tokens + self.budget


def block_tokens(content: Any) -> int:
    """A string, or content blocks: text blocks as text, the rest (images, tool use and
    results, documents) by JSON size."""
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):
        return sum(text_tokens(b["text"]) if isinstance(b, dict) and isinstance(
            b.get("text"), str) else _json_tokens(b) for b in content)
    if content is None:
        return 0
    return _json_tokens(content)


def message_prompt_tokens(body: dict) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: Field required (a non-empty array).")
    total = 0
    for message in messages:
        if not isinstance(message, dict):
            raise BadRequest("messages: each message must be an object.")
        total += MESSAGE_TOKENS + block_tokens(message.get("content"))
    total += block_tokens(body.get("system"))
    if "tools" in body:
        total += _json_tokens(body["tools"])
    return total


def prepare_message(body: dict, count_only: bool = False) -> PreparedMessage:
    """Check and estimate a Messages (or count_tokens) request; BadRequest when malformed."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required.")
    prompt = message_prompt_tokens(body)
    if count_only:
        return PreparedMessage(model, False, prompt, 0)
    budget = body.get("max_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise BadRequest("max_tokens: Field required (a positive integer).")
    return PreparedMessage(model, body.get("stream") is True, prompt, budget)
