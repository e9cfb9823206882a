"""The Messages routes: pick the backend by model, reserve tokens, settle them from the answer.

The same place in the pipeline, the same token limits, key budgets and ledger as the OpenAI
stage (openai/stage.py), on the same Bill; only the wire differs: Anthropic's estimate,
usage (message_start + message_delta), first-event failures and error event. count_tokens is
routed by model like a message and costs nothing (the Messages API does not bill it).
Upstream, a pool member's key goes in `x-api-key` (stages/target_request.py).
"""

from __future__ import annotations

from ..core.clock import Clock
from ..core.errors import ModelNotFound
from ..core.pipeline import Handler, Stage
from ..core.routes import ANTHROPIC_COUNT, ANTHROPIC_KINDS, MATCH
from ..core.upstream import UpstreamResponse
from ..http.messages import GatewayRequest, GatewayResponse
from ..openai.bill import BILL, Bill, TokenLimiter, Wire, reserve, settle_on_answer
from ..openai.early import Failure, peek
from ..openai.ledger import TokenLedger
from ..openai.ports import Models, TokenScopes
from ..openai.sse import DEFAULT_MAX_EVENT_BYTES
from ..openai.stage import NOT_SENT, refuse_what_never_fits
from ..ratelimit.limits import REQUESTS_DECISION, TOKENS_DECISION
from ..routing.pools import PLAN
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
        client = context.client
        bill = Bill(limiter, limits.scopes(context, prepared.model), ledger, client,
                    prepared.model, prepared.estimate, prompt_tokens=prepared.prompt_tokens)
        if spender is not None:
            bill.spend = spender.charge(prepared.model, prepared.prompt_tokens, prepared.budget,
                                        context)
        if limiter is not None:
            refuse_what_never_fits(bill.scopes, prepared.estimate)
        BILL.set(context, bill)
        try:
            await reserve(bill, clock)
        finally:
            TOKENS_DECISION.set(context, bill.decision)
        context.first_events = first_events if prepared.stream else None
        try:
            response = await call_next(request)
        except NOT_SENT:
            bill.refund()  # no backend was asked: nothing was used
            raise
        except BaseException:
            bill.settle(None)
            raise
        bill.completion_free = context.completion_free  # a cache hit: the prompt only
        response.headers.extend(errors.limit_headers(REQUESTS_DECISION.get(context), bill.decision,
                                                     clock.now()))
        return settle_on_answer(response, bill, prepared.stream, False, WIRE, max_event_bytes)

    return stage
