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


def usage_from(obj: object) -> Usage | None:
    """A Usage from a decoded usage object; None unless prompt_tokens is a count.

    Embeddings report prompt_tokens and total_tokens only: the completion is total - prompt.
    """
    if not isinstance(obj, dict):
        return None
    prompt = _count(obj.get("prompt_tokens"))
    if prompt is None:
        return None
    completion = _count(obj.get("completion_tokens"))
    if completion is None:
        total = _count(obj.get("total_tokens"))
        completion = max(0, total - prompt) if total is not None else 0
    cached = _detail(obj, "prompt_tokens_details", "cached_tokens", prompt)
    reasoning = _detail(obj, "completion_tokens_details", "reasoning_tokens", completion)
    return Usage(prompt, completion, cached, reasoning)


def _detail(obj: dict, details: str, name: str, bound: int) -> int:
    """A count inside a details object, at most `bound` (the count it is part of)."""
    found = obj.get(details)
    value = _count(found.get(name)) if isinstance(found, dict) else None
    return min(value, bound) if value is not None else 0


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
