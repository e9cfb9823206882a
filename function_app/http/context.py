"""What the stages of one request tell each other: one typed field per fact, each set by one stage.

A field is None (or its empty value) until the stage that sets it has run; a later stage reads it,
never an earlier one. The order of the stages is bootstrap.py's list; the setters, in that order:

    telemetry stage      attempt_observer, request_span
    Azure paths stage    deployment             (Azure-style client paths, aoai/inbound.py)
    routing stage        match
    tenant auth stage    grant                  (only with GATEWAY_AUTH and a gateway key)
    identity stage       client_id
    rate-limit stage     requests_decision
    body stage           json                   (routes whose kind takes a JSON body)
    OpenAI stage         bill, tokens_decision, plan
    cache stage          completion_free, cache_status
    upstream step        served_by, member
    MCP stage            mcp                    (the /mcp/{server} routes)

The errors stage reads whatever was set before the failure (match, the two decisions) to shape
its answer, and the telemetry stage reads all of it once the answer is complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: http/ sits below every package it names here
    from ..mcp.stage import McpCall
    from ..openai.bill import Bill
    from ..ratelimit.limits import Decision
    from ..routing.attempts import Observer
    from ..routing.pools import Member, Plan
    from ..routing.routes import Match
    from ..tenants.access import Grant


class StageOrderError(LookupError):
    """A stage read a field that an earlier stage should have set: the stage order is wrong."""


@dataclass(slots=True)
class RequestContext:
    attempt_observer: Observer | None = None  # wraps each upstream attempt (a client span)
    match: Match | None = None  # the route and the path to forward; None on an unroutable path
    grant: Grant | None = None  # the gateway API key's grant, when one was presented
    client_id: str | None = None  # the client for limits, budgets, cache partitions, telemetry
    requests_decision: Decision | None = None  # the request limiter's; for x-ratelimit-*
    json: dict | None = None  # the checked JSON object body
    bill: Bill | None = None  # the token reservation, settled from the answer
    tokens_decision: Decision | None = None  # the token limiter's; for x-ratelimit-*-tokens
    plan: Plan | None = None  # the model's plan, in place of the route's
    completion_free: bool = False  # answered from the completion cache: only the prompt is billed
    cache_status: str | None = None  # "hit", "miss", "stale" or "bypass", for telemetry
    served_by: str = ""  # the backend (or model label) that answered
    deployment: str | None = None  # an Azure-style path's deployment: the model (aoai/inbound)
    mcp: McpCall | None = None  # MCP routes: server, method, tool, outcome (for telemetry)
    # Set by a model stage for streamed APIs that fail inside a 200 (Responses, Messages):
    # `await first_events(answer)` -> (answer, Failure or None), see openai/early.py.
    first_events: Callable[[Any], Awaitable[tuple[Any, Any]]] | None = None
    member: Member | None = None  # the pool member that answered (upstream step)
    request_span: Any = None  # the telemetry stage's request span: parent of guardrail spans

    @property
    def routed(self) -> Match:
        """`match`, for the stages after routing (which sets it or raises)."""
        if self.match is None:
            raise StageOrderError("a stage after routing ran without a route match")
        return self.match

    @property
    def client(self) -> str:
        """`client_id`, for the stages after the identity stage."""
        if self.client_id is None:
            raise StageOrderError("a stage after the identity stage ran without a client id")
        return self.client_id
