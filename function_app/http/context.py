"""What the stages of one request tell each other: one typed fact each, each set by one stage.

A fact is None (or its empty value) until the stage that sets it has run; a later stage reads it,
never an earlier one. The order of the stages is wiring/build.py's list; the setters, in order:

    telemetry stage      ATTEMPT_OBSERVER, request_span       (routing/attempts.py)
    Azure paths stage    deployment             (Azure-style client paths, aoai/inbound.py)
    routing stage        MATCH                                (routing/routes.py)
    tenant auth stage    GRANT                  (only with GATEWAY_AUTH and a gateway key;
                                                 tenants/access.py)
    identity stage       client_id
    rate-limit stage     REQUESTS_DECISION                    (ratelimit/limits.py)
    MCP stage            MCP_CALL, served_by    (the /mcp/{server} routes; mcp/stage.py)
    body stage           json                   (routes whose kind takes a JSON body)
    deployment stage     json's model           (an Azure path's deployment; aoai/inbound.py)
    guardrails stage     json                   (redacted, when a policy redacts)
    OpenAI stage         BILL, TOKENS_DECISION, PLAN, first_events
                                 (openai/bill.py, ratelimit/limits.py, routing/pools.py)
    Anthropic stage      BILL, TOKENS_DECISION, PLAN, first_events
    cache stage          completion_free, cache_status  (read by telemetry)
    upstream step        served_by, MEMBER                    (routing/pools.py)

Facts whose type belongs to a package above http/ are `Fact`s that package declares with its own
type, so http/ imports nothing outside itself (tests/unit/test_import_map.py) and a reader still
gets the exact type. The errors stage reads whatever was set before the failure (the match, the
two decisions) to shape its answer, and the telemetry stage reads all of it once the answer is
complete.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


class Fact[T]:
    """A typed key for one fact on the request context, as aiohttp's `AppKey`: declared once by
    the package that owns the type (`BILL: Fact[Bill] = Fact("bill")`). `set` accepts only a T,
    so what `get` finds under this key is a T: the two `type: ignore`s below state that (a
    `typing.cast` is a function call on every read, about 13 a request)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    # `in` and a subscript rather than `dict.get`: the same lookup without a method call, on
    # the dozen reads a request makes.

    def get(self, context: RequestContext) -> T | None:
        facts = context.facts
        name = self.name
        return facts[name] if name in facts else None  # type: ignore[return-value]

    def need(self, context: RequestContext) -> T:
        """The fact, for a stage after the one that sets it; StageOrderError if it is unset."""
        facts = context.facts
        name = self.name
        value = facts[name] if name in facts else None
        if value is None:
            raise StageOrderError(f"a stage read {self.name!r} before the stage that sets it ran")
        return value  # type: ignore[return-value]

    def set(self, context: RequestContext, value: T | None) -> None:
        context.facts[self.name] = value

    def __repr__(self) -> str:
        return f"Fact({self.name!r})"


class StageOrderError(LookupError):
    """A stage read a field that an earlier stage should have set: the stage order is wrong."""


@dataclass(slots=True)
class RequestContext:
    client_id: str | None = None  # the client for limits, budgets, cache partitions, telemetry
    json: dict | None = None  # the checked JSON object body
    completion_free: bool = False  # answered from the completion cache: only the prompt is billed
    cache_status: str | None = None  # "hit", "miss", "stale" or "bypass", for telemetry
    served_by: str = ""  # the backend (or model label) that answered
    deployment: str | None = None  # an Azure-style path's deployment: the model (aoai/inbound)
    # Set by a model stage for streamed APIs that fail inside a 200 (Responses, Messages):
    # `await first_events(answer)` -> (answer, Failure or None), see openai/early.py.
    first_events: Callable[[Any], Awaitable[tuple[Any, Any]]] | None = None
    request_span: Any = None  # the telemetry stage's request span: parent of guardrail spans
    # The facts of packages above http/, by their Fact's name (see Fact).
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def client(self) -> str:
        """`client_id`, for the stages after the identity stage."""
        if self.client_id is None:
            raise StageOrderError("a stage after the identity stage ran without a client id")
        return self.client_id
