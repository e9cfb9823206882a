"""Anthropic's usage object, as the gateway's Usage.

Anthropic reports `input_tokens` without the prompt tokens read from or written to its prompt
cache (`cache_read_input_tokens`, `cache_creation_input_tokens`); the gateway's prompt_tokens is
all three together, and cached_tokens the reads (priced at the cached rate). A plain answer has
one usage object; a stream has message_start's (input, and output so far) and message_delta's
(cumulative output; recent API versions repeat the input counts there).
"""

from __future__ import annotations

import json

from ..openai.usage import Usage

INPUT_FIELDS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def usage_of(obj: object) -> Usage | None:
    """The Usage of an Anthropic usage object; None unless it has input_tokens."""
    if not isinstance(obj, dict) or "input_tokens" not in obj:
        return None
    cached = _count(obj.get("cache_read_input_tokens"))
    prompt = sum(_count(obj.get(name)) for name in INPUT_FIELDS)
    return Usage(prompt, _count(obj.get("output_tokens")), cached)


def body_usage(data: bytes) -> Usage | None:
    """The usage of a plain Messages answer (or None when it has none, or is not JSON)."""
    try:
        decoded = json.loads(data)
    except ValueError:
        return None
    return usage_of(decoded.get("usage")) if isinstance(decoded, dict) else None


class StreamUsage:
    """Usage gathered from a stream's events; `usage` once message_delta has been seen."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._ended = False

    def start(self, usage: object) -> None:
        if isinstance(usage, dict):
            self._counts.update({k: _count(v) for k, v in usage.items() if k in INPUT_FIELDS
                                 or k == "output_tokens"})

    def delta(self, usage: object) -> None:
        if isinstance(usage, dict):
            self._counts.update({k: _count(v) for k, v in usage.items()
                                 if k in INPUT_FIELDS or k == "output_tokens"
                                 if v is not None})
            self._ended = True

    @property
    def usage(self) -> Usage | None:
        return usage_of(self._counts) if self._ended and self._counts else None
