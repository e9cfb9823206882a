"""The `usage` object of an OpenAI answer, found without parsing the whole answer.

A regular expression finds the last `"usage": {` and only that object is decoded. It cannot match
inside a JSON string, where every quote is escaped, so it finds keys only; the last one is the
top-level usage, which OpenAI-compatible servers write after `choices` or `data`.

Usage is the backend's word, and a backend can be wrong or hostile: an answer claiming 2^70
prompt tokens once charged that much to every token limit of the request and locked the tenant
out (issue #22, item 8). So a usage object whose counts are not non-negative integers carries a
`problem`, and `implausible` bounds the counts by what the request could have used; either way
the bill keeps the reservation instead (openai/bill.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_DECODER = json.JSONDecoder()


# A real tokenizer may count up to about one token per character where the estimate counts a
# quarter (openai/estimate.py), and images or tools cost more than their JSON: a prompt may use
# this multiple of its estimate plus this many tokens, no more.
PROMPT_FACTOR, PROMPT_SLACK = 8, 4096


@dataclass(frozen=True)
class Usage:
    """Tokens a backend reported. `cached_tokens` are part of `prompt_tokens` (served from the
    provider's prompt cache) and `reasoning_tokens` part of `completion_tokens` (hidden output),
    as OpenAI and Azure OpenAI report them; they are counted, never added a second time.
    `problem` says why the usage object could not be used."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    problem: str = ""

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
    """A Usage from a decoded usage object; None unless it has prompt_tokens (chat,
    completions, embeddings) or input_tokens (Responses).

    Embeddings report prompt_tokens and total_tokens only: the completion is total - prompt.
    Cached and reasoning tokens come from *_tokens_details, clamped to the counts they are in.
    A count that is present but not a non-negative integer (a float, a string, a negative,
    null) gives a Usage with a `problem`: never read as 0, which would refund a reservation.
    """
    if not isinstance(obj, dict):
        return None
    if "prompt_tokens" in obj:
        pre, post = "prompt", "completion"
    elif "input_tokens" in obj:
        pre, post = "input", "output"
    else:
        return None
    fields = [name for name in (f"{pre}_tokens", f"{post}_tokens", "total_tokens")
              if name in obj]
    bad = [name for name in fields if _count(obj[name]) is None]
    if bad:
        return Usage(0, 0, problem=f"{', '.join(bad)} not a non-negative integer")
    prompt = obj[f"{pre}_tokens"]
    completion = obj.get(f"{post}_tokens")
    if completion is None:
        total = obj.get("total_tokens")
        completion = max(0, total - prompt) if total is not None else 0
    cached = min(prompt, _detail(obj, f"{pre}_tokens_details", "cached_tokens"))
    reasoning = min(completion, _detail(obj, f"{post}_tokens_details", "reasoning_tokens"))
    return Usage(prompt, completion, cached, reasoning)


def implausible(usage: Usage, prompt_estimate: int, completion_budget: int) -> str:
    """Why `usage` cannot be what a request of this estimate used ("" when it can): a prompt
    beyond PROMPT_FACTOR times its estimate plus PROMPT_SLACK, or a completion beyond the
    budget the request reserved (max_tokens times n, which the backend was sent)."""
    if usage.problem:
        return usage.problem
    prompt_max = PROMPT_FACTOR * max(0, prompt_estimate) + PROMPT_SLACK
    if usage.prompt_tokens > prompt_max:
        return f"prompt_tokens {_shown(usage.prompt_tokens)} above {prompt_max}"
    if usage.completion_tokens > max(0, completion_budget):
        return (f"completion_tokens {_shown(usage.completion_tokens)} above the "
                f"{completion_budget} reserved")
    return ""


def _shown(count: int) -> str:
    """A count for a log line: a hostile one may have thousands of digits."""
    text = str(count)  # the JSON decoder refuses more than 4300 digits
    return text if len(text) <= 15 else f"{text[:3]}... ({len(text)} digits)"


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
