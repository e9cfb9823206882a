"""The Messages routes: pick the backend by model, reserve tokens, settle them from the answer.

The same place in the pipeline, the same token limits, key budgets and ledger as the OpenAI
stage (openai/stage.py), on the same Bill; only the wire differs: Anthropic's estimate,
usage (message_start + message_delta), first-event failures and error event. count_tokens is
routed by model like a message and costs nothing (the Messages API does not bill it).
Upstream, a pool member's key goes in `x-api-key` (routing/target_request.py).
"""

from __future__ import annotations

from ..core.clock import Clock
from ..core.errors import ModelNotFound
from ..core.pipeline import Handler, Stage
from ..core.upstream import UpstreamResponse
from ..http.messages import GatewayRequest, GatewayResponse
from ..openai.bill import TokenLimiter, Wire, settle_on_answer
from ..openai.early import Failure, peek
from ..openai.ledger import TokenLedger
from ..openai.ports import Models, TokenScopes
from ..openai.sse import DEFAULT_MAX_EVENT_BYTES
from ..openai.stage import open_bill, reserved_answer
from ..ratelimit.limits import REQUESTS_DECISION
from ..routing.pools import PLAN
from ..routing.routes import ANTHROPIC_COUNT, ANTHROPIC_KINDS, MATCH
from . import errors
from .estimate import prepare_message
from .stream import MessageTap
from .usage import body_usage

WIRE = Wire(stream_tap=MessageTap, body_usage=body_usage, error_event=errors.error_event)


async def first_events(answer: UpstreamResponse) -> tuple[UpstreamResponse, Failure | None]:
    return await peek(answer, errors.judge)


def anthropic_stage(models: Models, limits: TokenScopes, limiter: TokenLimiter | None,
                    ledger: TokenLedger, clock: Clock, spender=None,
                    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> Stage:
    """`models`, `limits`, `spender` and `max_event_bytes` as the OpenAI stage takes them."""

    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        context = request.context
        kind = MATCH.need(context).route.kind
        if kind not in ANTHROPIC_KINDS:
            return await call_next(request)
        prepared = prepare_message(context.json, count_only=kind == ANTHROPIC_COUNT)
        if models.resolve(prepared.model, context) is None:
            raise ModelNotFound(f"model: {prepared.model}")
        PLAN.set(context, models.plan(prepared.model, context))
        if kind == ANTHROPIC_COUNT:
            return await call_next(request)
        bill = open_bill(prepared, context, limiter, limits, ledger, spender)
        context.first_events = first_events if prepared.stream else None
        response = await reserved_answer(request, call_next, bill, clock)
        response.headers.extend(errors.limit_headers(REQUESTS_DECISION.get(context), bill.decision,
                                                     clock.now()))
        return settle_on_answer(response, bill, prepared.stream, False, WIRE, max_event_bytes)

    return stage
