"""The OpenAI routes: pick the backend by model, reserve tokens, settle them from the answer.

Runs after the identity stage (`context.client_id`), the rate-limit stage (requests) and the
body stage (`context.json`), before the cache stage and the upstream step; any other route passes
straight through.
GET /v1/models (and /v1/models/{id}) is answered from the model table without an upstream call:
it lists exactly the models the gateway routes by name, costs nothing, and cannot fail because
one backend is down.
"""

from __future__ import annotations

import json

from function_app.ratelimit.limits import ScopedLimit
from function_app.ratelimit.token_headers import limit_name, openai_limit_headers

from ..core.clock import Clock
from ..core.errors import BackendsCoolingDown, ModelNotFound, NeverFits, NoHealthyBackend
from ..core.pipeline import Handler, Stage
from ..http.context import RequestContext
from ..http.headers import Headers
from ..http.messages import GatewayRequest, GatewayResponse
from ..ratelimit.limits import REQUESTS_DECISION, TOKENS_DECISION
from ..routing.pools import PLAN
from ..routing.routes import MATCH, OPENAI_KINDS, OPENAI_MODELS, OPENAI_RESPONSES, OPENAI_STORED
from .bill import BILL, OPENAI_WIRE, Bill, TokenLimiter, reserve, settle_on_answer
from .estimate import Prepared, prepare
from .ledger import TokenLedger
from .ports import Models, TokenScopes
from .responses import prepare_response
from .responses_stage import first_events, follow_previous, responses_wire, stored_response
from .sse import DEFAULT_MAX_EVENT_BYTES

MODELS_PATH = "/v1/models"


def openai_stage(models: Models, limits: TokenScopes, limiter: TokenLimiter | None,
                 ledger: TokenLedger, default_max_tokens: int, clock: Clock,
                 ids_secret: bytes = b"", spender=None,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> Stage:
    """`spender` (tenants/spend.py) prices each request and names its spend budgets; a
    streamed event over `max_event_bytes` ends the stream (SSE_MAX_EVENT_BYTES)."""
    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        context = request.context
        kind = MATCH.need(context).route.kind
        if kind not in OPENAI_KINDS:
            return await call_next(request)
        if kind == OPENAI_MODELS:
            return models_answer(models.names(context), request.path)
        if kind == OPENAI_STORED:
            return await stored_response(request, call_next, models, ids_secret)
        responses = kind == OPENAI_RESPONSES
        prepared = prepare_response(context.json, default_max_tokens) if responses \
            else prepare(kind, context.json, default_max_tokens)
        backend = models.resolve(prepared.model, context)
        if backend is None:
            raise ModelNotFound(f"The model '{prepared.model}' does not exist.")
        bill = open_bill(prepared, context, limiter, limits, ledger, spender)
        # Everything that can refuse the request runs before the reservation, which nothing
        # between it and the upstream step may leave unsettled.
        route_to(request, models, prepared)
        previous = follow_previous(request, models, ids_secret) if responses else None
        context.first_events = first_events if responses and prepared.stream else None
        response = await reserved_answer(request, call_next, bill, clock)
        response.headers.update(tighter_limits(
            response.headers, openai_limit_headers(REQUESTS_DECISION.get(context), bill.decision)))
        wire = responses_wire(ids_secret, request, previous) if responses else OPENAI_WIRE
        return settle_on_answer(response, bill, prepared.stream, not prepared.wants_usage, wire,
                                max_event_bytes)

    return stage


# Raised only when no attempt reached a backend (routing/answer.py `give_up`).
NOT_SENT = (NoHealthyBackend, BackendsCoolingDown)


def tighter_limits(backend: Headers, ours: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Our x-ratelimit-* headers, less those of a kind (requests, tokens) for which the backend
    (Azure OpenAI sends x-ratelimit-remaining-*) reported fewer remaining: the client sees the
    tighter of the two limits, and the backend's stays as it came."""
    dropped = set()
    for kind in ("requests", "tokens"):
        name = f"x-ratelimit-remaining-{kind}"
        theirs, mine = backend.get(name), dict(ours).get(name)
        if theirs and mine and theirs.isdigit() and int(theirs) < int(mine):
            dropped.add(kind)
    return [(k, v) for k, v in ours if k.rsplit("-", 1)[-1] not in dropped]


def open_bill(prepared, context: RequestContext, limiter: TokenLimiter | None,
              limits: TokenScopes, ledger: TokenLedger, spender=None) -> Bill:
    """The request's bill (OpenAI's or Anthropic's `prepared`: model, estimate, prompt tokens,
    budget), priced by `spender` when spend is on; 400 when the estimate can never fit."""
    client = context.client
    bill = Bill(limiter, limits.scopes(context, prepared.model), ledger, client, prepared.model,
                prepared.estimate, prompt_tokens=prepared.prompt_tokens)
    if spender is not None:
        bill.spend = spender.charge(prepared.model, prepared.prompt_tokens, prepared.budget,
                                    context)
    if limiter is not None:
        refuse_what_never_fits(bill.scopes, prepared.estimate)
    return bill


async def reserved_answer(request: GatewayRequest, call_next: Handler, bill: Bill,
                          clock: Clock) -> GatewayResponse:
    """Reserve `bill` (429 or 503 when refused), then the next step's answer. The bill and its
    decision land on the context either way; a request no backend was asked is refunded, one
    that got no answer keeps its charge (the backend may have worked)."""
    context = request.context
    BILL.set(context, bill)  # read by the telemetry stage when the answer ends
    try:
        await reserve(bill, clock)
    finally:
        TOKENS_DECISION.set(context, bill.decision)  # headers, on a 429 too
    try:
        response = await call_next(request)
    except NOT_SENT:
        bill.refund()  # no backend was asked (every breaker open): nothing was used
        raise
    except BaseException:
        bill.settle(None)  # no answer: the backend may have worked, the charge stays
        raise
    bill.completion_free = context.completion_free  # a cache hit: the prompt only
    return response


def refuse_what_never_fits(scopes: list[ScopedLimit], estimate: int) -> None:
    """400 when `estimate` exceeds a bucket's size: waiting can never admit it, so a 429 with
    a Retry-After would only send the client into a retry loop."""
    for scoped in scopes:
        if not scoped.limit.shadow and estimate > scoped.limit.burst:
            raise NeverFits(
                f"The request needs {estimate} tokens (prompt estimate plus max_tokens times n); "
                f"{limit_name(scoped.scope)} allows at most {int(scoped.limit.burst)}. Lower "
                "max_tokens, n or the prompt.")


def route_to(request: GatewayRequest, models: Models, prepared: Prepared) -> None:
    """Point the upstream step at the model's plan (pool, then fallback models) with the
    rewritten body; each attempt sends its member's key (routing/member_attempt.py)."""
    PLAN.set(request.context, models.plan(prepared.model, request.context))
    if prepared.body is not None:
        request.body = prepared.body


def models_answer(names: list[str], path: str) -> GatewayResponse:
    """The model list (`names`, those the request may use), or one model for /v1/models/{id}
    (404 model_not_found if unknown)."""
    wanted = path[len(MODELS_PATH) + 1:]
    if wanted and wanted not in names:
        raise ModelNotFound(f"The model '{wanted}' does not exist.")
    entries = [{"id": name, "object": "model", "created": 0, "owned_by": "gateway"}
               for name in names if not wanted or name == wanted]
    payload = entries[0] if wanted else {"object": "list", "data": entries}
    return GatewayResponse(200, Headers([("content-type", "application/json")]),
                           json.dumps(payload).encode())
