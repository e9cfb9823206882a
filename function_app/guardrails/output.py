"""A whole (non-streamed) answer checked before any of it is sent.

The answer's texts are its choices' `message.content` (chat) or `text` (completions). PII is
counted and, by the policy, redacted, blocked or annotated; Content Safety reads all choices
together. A block keeps the 200 and OpenAI's shape, as a model's own filter does: every
choice's content becomes null and its finish_reason "content_filter". A check that cannot run
lets the answer through (fail open) or answers 503 guardrail_unavailable (fail closed).
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.trace import Span, Tracer

from . import pii
from .counts import CheckCounts
from .errors import GuardrailUnavailable
from .policy import Policy
from .safety import ContentSafety, SafetyUnavailable
from .spans import child_span
from .verdict import harmful

MAX_ANSWER_BYTES = 8 * 1024 * 1024  # a larger answer is refused rather than sent unchecked


def _text_field(choice: Any) -> tuple[dict, str] | None:
    """(the object holding the text, its key) of a choice, or None."""
    if not isinstance(choice, dict):
        return None
    message = choice.get("message")
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        return message, "content"
    if isinstance(choice.get("text"), str):
        return choice, "text"
    return None


async def check_answer(policy: Policy, data: bytes, safety: ContentSafety | None,
                       counts: CheckCounts, tracer: Tracer | None = None,
                       parent: Span | None = None) -> tuple[bytes, list[str]]:
    """The answer to send (rewritten when redacted or filtered) and its annotations."""
    try:
        answer = json.loads(data)
    except ValueError:
        return data, []
    choices = answer.get("choices") if isinstance(answer, dict) else None
    fields = [f for f in map(_text_field, choices or []) if f is not None]
    if not fields:
        return data, []
    notes: list[str] = []
    changed = _pii(policy, fields, counts, notes)
    if changed and policy.output.get("pii") == "block":
        _filter(choices)
        return json.dumps(answer).encode(), notes
    if "content_safety" in policy.output:
        text = "\n".join(holder[key] for holder, key in fields)
        with child_span(tracer, parent, "guardrails.output.content_safety"):
            found = await _analyze(policy, safety, text, counts)
        if found is not None:
            action = policy.output["content_safety"]
            counts.check("output", "content_safety", action)
            if action == "block":
                _filter(choices)
                changed = True
            notes.append(f"content_safety={found[0]}:{found[1]}")
    return (json.dumps(answer).encode() if changed else data), notes


async def _analyze(policy: Policy, safety: ContentSafety | None, text: str,
                   counts: CheckCounts) -> tuple[str, int] | None:
    try:
        if safety is None:
            raise SafetyUnavailable("CONTENT_SAFETY_ENDPOINT is not set")
        found = await harmful(safety, policy, text)
    except SafetyUnavailable:
        counts.check("output", "content_safety", "unavailable_" + policy.fail)
        if policy.fails_open:
            return None
        raise GuardrailUnavailable() from None
    if found is None:
        counts.check("output", "content_safety", "pass")
    return found


def _pii(policy: Policy, fields: list[tuple[dict, str]], counts: CheckCounts,
         notes: list[str]) -> bool:
    action = policy.output.get("pii")
    if action is None:
        return False
    found: dict[str, int] = {}
    for holder, key in fields:
        new, seen = pii.redact(holder[key], policy.detectors)
        for kind, n in seen.items():
            found[kind] = found.get(kind, 0) + n
        if action == "redact":
            holder[key] = new
    counts.pii(found)
    counts.check("output", "pii", action if found else "pass")
    if found and action != "redact":
        notes.append("pii=" + ",".join(sorted(found)))
    return bool(found) and action != "annotate"


def _filter(choices: list) -> None:
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("message"), dict):
            choice["message"]["content"] = None
        if "text" in choice:
            choice["text"] = ""
        choice["finish_reason"] = "content_filter"
