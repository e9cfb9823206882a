"""The Responses API (POST /v1/responses): its token estimate and its request rewrite.

The prompt is `instructions` plus `input` (a string, or a list of items: messages count like chat
messages, any other item - a function call, its output, a reasoning item - a quarter of its JSON
length) plus the tool definitions. The completion budget is `max_output_tokens`, else the
gateway's default, which is then injected so the backend cannot exceed what was reserved.

Unlike chat completions nothing is added to a stream: the Responses API reports usage in its
final event (`response.completed`, `response.incomplete` or `response.failed`), and a backend
that does not know `stream_options` (Azure OpenAI among them) refuses a request carrying it.
"""

from __future__ import annotations

import json
from typing import Any

from ..core.errors import BadRequest
from .estimate import MESSAGE_TOKENS, Prepared, _content_tokens, _json_tokens, text_tokens


def _item_tokens(item: Any) -> int:
    if not isinstance(item, dict):
        raise BadRequest("Each input item must be an object.")
    if "role" in item and item.get("type", "message") == "message":
        return MESSAGE_TOKENS + _content_tokens(item.get("content"))
    return _json_tokens(item)


def response_prompt_tokens(body: dict) -> int:
    value = body.get("input")
    if isinstance(value, str):
        total = text_tokens(value)
    elif isinstance(value, list) and value:
        total = sum(_item_tokens(item) for item in value)
    else:
        raise BadRequest("'input' must be a string or a non-empty array of input items.")
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise BadRequest("'instructions' must be a string.")
        total += text_tokens(instructions)
    for extra in ("tools", "text"):
        if extra in body:
            total += _json_tokens(body[extra])
    return total


def prepare_response(body: dict, default_max_tokens: int) -> Prepared:
    """Check a Responses request, estimate it and inject max_output_tokens (BadRequest)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("You must provide a model parameter.")
    prompt = response_prompt_tokens(body)
    budget = body.get("max_output_tokens")
    changed = False
    if budget is None:
        budget, body, changed = default_max_tokens, {**body, "max_output_tokens":
                                                     default_max_tokens}, True
    elif not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise BadRequest("'max_output_tokens' must be a positive integer.")
    stream = body.get("stream") is True
    encoded = json.dumps(body, separators=(",", ":")).encode() if changed else None
    # wants_usage: the final event carries the usage and is the client's own: never stripped.
    return Prepared(model, stream, True, prompt, budget, encoded)
