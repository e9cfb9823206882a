"""The guardrails stage: input checks before anything is forwarded, output checks on the answer.

Placed after the body stage (it reads `context.json`) and before the model stages (OpenAI,
Responses, Anthropic Messages), so a blocked request reserves no tokens and reaches no
backend: it costs only its checks; the error is rendered in the route's API shape. A redacted body
replaces the request's body and `context.json`, so the OpenAI stage estimates, and the
backend receives, the redacted text. Requests without a JSON body, GET /v1/models and routes
no policy covers pass untouched. The answer (2xx only) is checked whole, or window by window
when it is an event stream; embeddings answers carry no text and pass.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from opentelemetry.trace import Tracer

from ..core.errors import GatewayError
from ..core.pipeline import Handler, Stage
from ..http.messages import GatewayRequest, GatewayResponse
from ..routing.routes import ANTHROPIC_COUNT, MATCH, OPENAI_EMBEDDINGS, OPENAI_MODELS, OPENAI_STORED
from ..tenants.access import GRANT
from .counts import CheckCounts
from .errors import FINDING_HEADER, GuardrailUnavailable
from .output import MAX_ANSWER_BYTES, check_answer
from .policy import Policy, select
from .safety import ContentSafety
from .stream import WindowedStream
from .verdict import check_input
from .wires import ChatWire, MessagesWire, ResponsesWire, wire_for

Wire = ChatWire | ResponsesWire | MessagesWire
# No model writes an answer to these: the model list, a stored response, a token count.
UNCHECKED_KINDS = frozenset({OPENAI_MODELS, OPENAI_STORED, ANTHROPIC_COUNT})


@dataclass
class Guardrails:
    policies: Sequence[Policy]
    safety: ContentSafety | None
    counts: CheckCounts = field(default_factory=CheckCounts)
    tracer: Tracer | None = None


def named_policy(request: GatewayRequest) -> str | None:
    """The policy the request's gateway key (else its tenant) names, if any."""
    grant = GRANT.get(request.context)
    if grant is None:
        return None
    named = getattr(grant.key, "guardrail", "")
    if not named and grant.tenant is not None:
        named = getattr(grant.tenant, "guardrail", "")
    return named or None


def guardrails_stage(guard: Guardrails) -> Stage:
    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        context = request.context
        kind = MATCH.need(context).route.kind
        body = context.json
        if body is None or kind in UNCHECKED_KINDS:
            return await call_next(request)
        model = body.get("model") if isinstance(body.get("model"), str) else None
        policy = select(guard.policies, request.path, model, named_policy(request))
        if policy is None:
            return await call_next(request)
        parent = context.request_span
        verdict = await check_input(policy, kind, body, guard.safety, guard.counts,
                                    guard.tracer, parent)
        if verdict.body is not None:
            context.json = verdict.body
            request.body = json.dumps(verdict.body, separators=(",", ":")).encode()
            request.headers.remove("content-length")
        response = await call_next(request)
        response.headers.remove(FINDING_HEADER)  # only the gateway speaks for its checks
        notes = [*verdict.annotations, *(f"unchecked={c}" for c in verdict.unchecked)]
        if policy.output and 200 <= response.status < 300 and kind != OPENAI_EMBEDDINGS:
            notes += await _check_output(guard, policy, response, parent, wire_for(kind))
        if verdict.pii_counts and verdict.body is not None:
            notes.append("redacted=" + ",".join(sorted(verdict.pii_counts)))
        if notes:
            response.headers.set(FINDING_HEADER, f"policy={policy.name}; " + "; ".join(notes))
        return response

    return stage


async def _check_output(guard: Guardrails, policy: Policy, response: GatewayResponse,
                        parent, wire: Wire) -> list[str]:
    content_type = response.headers.get("content-type") or ""
    if content_type.startswith("text/event-stream") and not isinstance(response.body, bytes):
        window = WindowedStream(policy, guard.safety, guard.counts, guard.tracer, parent, wire)
        response.body = window.run(response.body)
        response.headers.remove("content-length")
        return []
    if "json" not in content_type:
        return []
    data = await _read(response, policy)
    if data is None:
        return ["unchecked=output_too_large"]
    response.body, notes = await check_answer(policy, data, guard.safety, guard.counts,
                                              guard.tracer, parent, wire)
    response.headers.remove("content-length")
    return notes


async def _read(response: GatewayResponse, policy: Policy) -> bytes | None:
    """The whole answer, or None (left to stream, unchecked) when larger than the cap and the
    policy fails open; GuardrailUnavailable when it fails closed."""
    if isinstance(response.body, (bytes, bytearray)):
        return bytes(response.body)
    body: AsyncIterator[bytes] = response.body
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in body:
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                break
    except GatewayError:
        await _close(body)
        raise
    if size <= MAX_ANSWER_BYTES:
        await _close(body)
        return b"".join(chunks)
    if not policy.fails_open:
        await _close(body)
        raise GuardrailUnavailable("The answer is larger than the output checks accept.")
    response.body = _chain(chunks, body)
    return None


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        for chunk in first:
            yield chunk
        async for chunk in rest:
            yield chunk
    finally:
        await _close(rest)


async def _close(body: AsyncIterator[bytes]) -> None:
    close = getattr(body, "aclose", None)
    if close is not None:
        await close()
