"""The grant of the request being handled, for the limiter wrappers that only see a client id.

The rate-limit stage asks `limits_for(client, route)` and the OpenAI stage `scopes(client,
model)` without the request; the auth stage sets this context variable for the rest of the
request's pipeline (same task) so that those wrappers can add the key's own limits and budgets
without changing the limiter's or the stages' signatures. Unset outside a keyed request.
"""

from __future__ import annotations

from contextvars import ContextVar

from .access import Grant

current_grant: ContextVar[Grant | None] = ContextVar("current_grant", default=None)
