"""A whole (non-streamed) answer checked before any of it is sent.

The answer's texts are where its wire (wires.py) says: choices' `message.content` or `text`,
a Response's output_text parts, a Message's text blocks. PII is counted and, by the policy,
redacted, blocked or annotated; Content Safety reads all texts together. A block keeps the 200
and the API's own shape, as a model's own filter does: finish_reason "content_filter" with
null content, an incomplete Response (reason content_filter), a Message with stop_reason
"refusal" and no content. A check that cannot run
lets the answer through (fail open) or answers 503 guardrail_unavailable (fail closed).
"""

from __future__ import annotations

import json

from opentelemetry.trace import Span, Tracer

from . import pii
from .counts import CheckCounts
from .errors import GuardrailUnavailable
from .policy import Policy
from .safety import ContentSafety, SafetyUnavailable
from .spans import child_span
from .verdict import harmful
from .wires import CHAT, ChatWire, MessagesWire, ResponsesWire

Wire = ChatWire | ResponsesWire | MessagesWire

MAX_ANSWER_BYTES = 8 * 1024 * 1024  # a larger answer is refused rather than sent unchecked


async def check_answer(policy: Policy, data: bytes, safety: ContentSafety | None,
                       counts: CheckCounts, tracer: Tracer | None = None,
                       parent: Span | None = None, wire: Wire = CHAT) -> tuple[bytes, list[str]]:
    """The answer to send (rewritten when redacted or filtered) and its annotations."""
    try:
        answer = json.loads(data)
    except ValueError:
        return data, []
    fields = wire.answer_slots(answer) if isinstance(answer, dict) else []
    if not fields:
        return data, []
    notes: list[str] = []
    changed = _pii(policy, fields, counts, notes)
    if changed and policy.output.get("pii") == "block":
        wire.filter_answer(answer)
        return json.dumps(answer).encode(), notes
    if "content_safety" in policy.output:
        text = "\n".join(holder[key] for holder, key in fields)
        with child_span(tracer, parent, "guardrails.output.content_safety"):
            found = await _analyze(policy, safety, text, counts)
        if found is not None:
            action = policy.output["content_safety"]
            counts.check("output", "content_safety", action)
            if action == "block":
                wire.filter_answer(answer)
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
