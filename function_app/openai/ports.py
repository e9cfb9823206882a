"""What the model stages (OpenAI, Responses, Anthropic) ask of the model table and the token
limits, per request: the request context rides along, so that a gateway key's grant on it
(tenants/limits.py: KeyModels, KeyTokenLimits) narrows the answer. Wiring passes those wrappers;
without a key on the request they answer as the table and the limits do."""

from __future__ import annotations

from typing import Protocol

from function_app.ratelimit.limits import ScopedLimit

from ..http.context import RequestContext
from ..routing.model_routes import ModelBackend
from ..routing.pools import Member, Plan


class Models(Protocol):
    def resolve(self, model: str, context: RequestContext) -> ModelBackend | None:
        """The backend of `model`, None if there is none; raises if the request may not use it."""
        ...

    def plan(self, model: str, context: RequestContext) -> Plan | None: ...

    def members(self, context: RequestContext) -> list[Member]: ...

    def names(self, context: RequestContext) -> list[str]: ...


class TokenScopes(Protocol):
    def scopes(self, context: RequestContext, model: str) -> list[ScopedLimit]: ...
