"""The `usage` object of an OpenAI answer, found without parsing the whole answer.

A regular expression finds the last `"usage": {` and only that object is decoded. It cannot match
inside a JSON string, where every quote is escaped, so it finds keys only; the last one is the
top-level usage, which OpenAI-compatible servers write after `choices` or `data`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Usage:
    """Tokens a backend reported. `cached_tokens` are part of `prompt_tokens` (served from the
    provider's prompt cache) and `reasoning_tokens` part of `completion_tokens` (hidden output),
    as OpenAI and Azure OpenAI report them; they are counted, never added a second time."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _detail(obj: dict, field: str, name: str) -> int:
    details = obj.get(field)
    found = _count(details.get(name)) if isinstance(details, dict) else None
    return found or 0


def usage_from(obj: object) -> Usage | None:
    """A Usage from a decoded usage object; None unless prompt_tokens (chat, completions,
    embeddings) or input_tokens (Responses) is a count.

    Embeddings report prompt_tokens and total_tokens only: the completion is total - prompt.
    Cached and reasoning tokens come from *_tokens_details, clamped to the counts they are in.
    """
    if not isinstance(obj, dict):
        return None
    prompt, pre, post = _count(obj.get("prompt_tokens")), "prompt", "completion"
    if prompt is None:
        prompt, pre, post = _count(obj.get("input_tokens")), "input", "output"
        if prompt is None:
            return None
    completion = _count(obj.get(f"{post}_tokens"))
    if completion is None:
        total = _count(obj.get("total_tokens"))
        completion = max(0, total - prompt) if total is not None else 0
    cached = min(prompt, _detail(obj, f"{pre}_tokens_details", "cached_tokens"))
    reasoning = min(completion, _detail(obj, f"{post}_tokens_details", "reasoning_tokens"))
    return Usage(prompt, completion, cached, reasoning)


def find_usage(data: bytes) -> Usage | None:
    """The last usage object in `data` (a JSON answer or SSE events), or None."""
    last = None
    for last in USAGE_OBJECT.finditer(data):  # noqa: B007 (only the last one is wanted)
        pass
    if last is None:
        return None
    try:
        obj, _ = _DECODER.raw_decode(data[last.end() - 1:].decode("utf-8", "replace"))
    except ValueError:
        return None
    return usage_from(obj)
