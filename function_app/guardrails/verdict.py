"""One request's input check: PII first (offline, so redacted values never reach any service),
then Prompt Shields and Content Safety concurrently; their answers become one `InputVerdict`.

A `block` raises ContentFiltered naming the check and category; a check that cannot run raises
GuardrailUnavailable when the policy fails closed, and is listed in `unchecked` when it fails
open. Texts longer than the service takes in one call are sent in overlapping slices, all
concurrently, up to MAX_CHECKED_CHARS (TooLongToCheck beyond: an unchecked tail would be a way
around the check).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import Span, Tracer

from . import pii
from .counts import CheckCounts
from .errors import ContentFiltered, GuardrailUnavailable, TooLongToCheck
from .policy import Policy
from .safety import ANALYZE_MAX_CHARS, SHIELD_MAX_CHARS, ContentSafety, SafetyUnavailable
from .spans import child_span
from .texts import Texts, collect, walk

MAX_CHECKED_CHARS = 100_000
SLICE_OVERLAP = 500  # characters repeated between slices: an attack across a cut is still seen


@dataclass
class InputVerdict:
    body: dict | None = None  # the rewritten body when PII was redacted
    pii_counts: dict[str, int] = field(default_factory=dict)
    annotations: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


def slices(text: str, size: int, overlap: int = SLICE_OVERLAP) -> list[str]:
    """`text` in pieces of at most `size`, each starting `overlap` characters before the end
    of the previous one, so a phrase shorter than `overlap` is never cut in two."""
    if len(text) <= size:
        return [text]
    step = size - overlap
    return [text[i:i + size] for i in range(0, len(text) - overlap, step)]


async def harmful(safety: ContentSafety, policy: Policy, text: str) -> tuple[str, int] | None:
    """The first category at or above the policy's severity in `text` (sliced), or None."""
    answers = await asyncio.gather(*(safety.analyze(part, policy.categories)
                                     for part in slices(text, ANALYZE_MAX_CHARS) if part))
    worst = max(((c, s) for a in answers for c, s in a.items()), key=lambda cs: cs[1],
                default=None)
    return worst if worst is not None and worst[1] >= policy.severity else None


async def attack(safety: ContentSafety, texts: Texts) -> str | None:
    """"jailbreak" (user prompt) or "indirect_attack" (a document), or None."""
    prompts = [p for p in slices("\n".join(texts.prompt), SHIELD_MAX_CHARS) if p]
    batches = _batches(texts.documents)
    pairs: list[tuple[str, list[str]]] = [(p, []) for p in prompts]
    for batch in batches:
        # The user's words and the documents they came with go together where they fit (the
        # service judges a document in the light of the prompt); the rest alone.
        if pairs and not pairs[0][1] and len(pairs[0][0]) + sum(map(len, batch)) \
                <= SHIELD_MAX_CHARS:
            pairs[0] = (pairs[0][0], batch)
        else:
            pairs.append(("", batch))
    answers = await asyncio.gather(*(safety.shield(p, docs) for p, docs in pairs))
    if any(a.user_attack for a in answers):
        return "jailbreak"
    return "indirect_attack" if any(any(a.document_attacks) for a in answers) else None


def _batches(documents: Sequence[str]) -> list[list[str]]:
    """Documents in groups of at most SHIELD_MAX_CHARS characters (long ones sliced)."""
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0
    for doc in documents:
        for part in slices(doc, SHIELD_MAX_CHARS):
            if current and size + len(part) > SHIELD_MAX_CHARS:
                batches.append(current)
                current, size = [], 0
            current.append(part)
            size += len(part)
    if current:
        batches.append(current)
    return batches


def apply_pii(policy: Policy, kind: str, body: dict, verdict: InputVerdict,
              counts: CheckCounts) -> dict:
    """The input PII check: redact (the body is rewritten), block or annotate."""
    action = policy.input.get("pii")
    if action is None:
        return body
    found: dict[str, int] = {}

    def visit(text: str, _role: str) -> str:
        new, seen = pii.redact(text, policy.detectors)
        for k, n in seen.items():
            found[k] = found.get(k, 0) + n
        return new if action == "redact" else text

    rewritten = walk(kind, body, visit)
    counts.pii(found)
    verdict.pii_counts = found
    if not found:
        counts.check("input", "pii", "pass")
        return body
    counts.check("input", "pii", action)
    if action == "block":
        raise ContentFiltered("pii", ",".join(sorted(found)))
    if action == "annotate":
        verdict.annotations.append("pii=" + ",".join(sorted(found)))
        return body
    verdict.body = rewritten
    return rewritten


async def check_input(policy: Policy, kind: str, body: dict, safety: ContentSafety | None,
                      counts: CheckCounts, tracer: Tracer | None = None,
                      parent: Span | None = None) -> InputVerdict:
    verdict = InputVerdict()
    with child_span(tracer, parent, "guardrails.pii") as span:
        body = apply_pii(policy, kind, body, verdict, counts)
        if span is not None and span.is_recording():
            span.set_attributes({f"gateway.guardrails.pii.{k}": n
                                 for k, n in verdict.pii_counts.items()})
    checks = [c for c in ("prompt_shields", "content_safety") if c in policy.input]
    if not checks:
        return verdict
    texts = collect(kind, body)
    if texts.size > MAX_CHECKED_CHARS:
        raise TooLongToCheck()
    results = await asyncio.gather(*(_run(check, policy, texts, safety, tracer, parent)
                                     for check in checks), return_exceptions=True)
    _judge(policy, dict(zip(checks, results, strict=True)), verdict, counts)
    return verdict


async def _run(check: str, policy: Policy, texts: Texts, safety: ContentSafety | None,
               tracer: Tracer | None, parent: Span | None) -> Any:
    if safety is None:
        raise SafetyUnavailable("CONTENT_SAFETY_ENDPOINT is not set")
    with child_span(tracer, parent, f"guardrails.{check}", {"gateway.guardrails.check": check}):
        call: Awaitable[Any]
        if check == "prompt_shields":
            call = attack(safety, texts)
        else:
            call = harmful(safety, policy, "\n".join(texts.all))
        return await call


def _judge(policy: Policy, results: dict[str, Any], verdict: InputVerdict,
           counts: CheckCounts) -> None:
    """Blocks win over failures: a request one check blocks is blocked whatever the other."""
    blocked: ContentFiltered | None = None
    failed = False
    for check, result in results.items():
        if isinstance(result, SafetyUnavailable):
            failed = True
            counts.check("input", check, "unavailable_" + policy.fail)
            verdict.unchecked.append(check)
            continue
        if isinstance(result, BaseException):
            raise result
        if result is None:
            counts.check("input", check, "pass")
            continue
        category = result if isinstance(result, str) else f"{result[0]}:{result[1]}"
        action = policy.input[check]
        counts.check("input", check, action)
        if action == "block":
            blocked = blocked or ContentFiltered(check, category)
        else:
            verdict.annotations.append(f"{check}={category}")
    if blocked is not None:
        raise blocked
    if failed and not policy.fails_open:
        raise GuardrailUnavailable()
