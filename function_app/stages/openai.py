"""The OpenAI routes: pick the backend by model, reserve tokens, settle them from the answer.

Runs after the rate-limit stage (requests) and the body stage (the JSON body is in
`context["json"]`), before the upstream step; any other route passes straight through.
GET /v1/models (and /v1/models/{id}) is answered from the model table without an upstream call:
it lists exactly the models the gateway routes by name, costs nothing, and cannot fail because
one backend is down.
"""

from __future__ import annotations

import json

from ..core.clock import Clock
from ..core.errors import ModelNotFound
from ..core.identity import ClientIdentity
from ..core.model_routes import ModelBackend, ModelTable
from ..core.models import GatewayRequest, GatewayResponse
from ..core.pipeline import Handler, Stage
from ..core.routes import OPENAI_MODELS, PROXY
from ..openai.estimate import Prepared, prepare
from ..openai.ledger import TokenLedger
from ..openai.limit_headers import REQUESTS_DECISION, TOKENS_DECISION, openai_limit_headers
from .openai_bill import Bill, TokenLimiter, TokenLimits, reserve, settle_on_answer

MODELS_PATH = "/v1/models"


def openai_stage(models: ModelTable, limits: TokenLimits, limiter: TokenLimiter | None,
                 ledger: TokenLedger, identity: ClientIdentity, default_max_tokens: int,
                 clock: Clock) -> Stage:
    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        kind = request.context["match"].route.kind
        if kind == PROXY:
            return await call_next(request)
        if kind == OPENAI_MODELS:
            return models_answer(models, request.path)
        prepared = prepare(kind, request.context["json"], default_max_tokens)
        backend = models.resolve(prepared.model)
        if backend is None:
            raise ModelNotFound(f"The model '{prepared.model}' does not exist.")
        client = request.context.get("client_id") or identity.of(request)
        bill = Bill(limiter, limits.scopes(client, prepared.model), ledger, client,
                    prepared.model, prepared.estimate)
        request.context["bill"] = bill  # read by the telemetry stage when the answer ends
        try:
            await reserve(bill, clock)
        finally:
            request.context[TOKENS_DECISION] = bill.decision  # headers, on a 429 too
        route_to(request, backend, prepared)
        try:
            response = await call_next(request)
        except BaseException:
            bill.settle(None)  # no answer: the backend may have worked, the charge stays
            raise
        response.set_headers(openai_limit_headers(request.context.get(REQUESTS_DECISION),
                                                  bill.decision))
        return settle_on_answer(response, bill, prepared.stream, not prepared.wants_usage)

    return stage


def route_to(request: GatewayRequest, backend: ModelBackend, prepared: Prepared) -> None:
    """Point the upstream step at `backend`, with the rewritten body and the backend's key."""
    request.context["backend_url"] = backend.base_url
    if prepared.body is not None:
        request.body = prepared.body
    if backend.api_key:
        # The client's own credential is for the gateway; it must not reach this backend.
        request.headers = [(k, v) for k, v in request.headers if k != "authorization"]
        request.headers.append(("authorization", f"Bearer {backend.api_key}"))


def models_answer(models: ModelTable, path: str) -> GatewayResponse:
    """The model list, or one model for /v1/models/{id} (404 model_not_found if unknown)."""
    wanted = path[len(MODELS_PATH) + 1:]
    names = models.names()
    if wanted and wanted not in names:
        raise ModelNotFound(f"The model '{wanted}' does not exist.")
    entries = [{"id": name, "object": "model", "created": 0, "owned_by": "gateway"}
               for name in names if not wanted or name == wanted]
    payload = entries[0] if wanted else {"object": "list", "data": entries}
    return GatewayResponse(200, [("content-type", "application/json")],
                           json.dumps(payload).encode())
