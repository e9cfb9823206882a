"""The client-visible errors of keys and budgets (part of the tree in core/errors.py).

No message ever carries a key: at most its prefix.
"""

from __future__ import annotations

from ..core.errors import GatewayError, Overloaded


class InvalidApiKey(GatewayError, status=401, code="invalid_api_key", message=(
        "A valid gateway API key is required: send it as 'Authorization: Bearer <key>' or "
        "'api-key: <key>'.")):
    pass


class Forbidden(GatewayError, status=403, code="forbidden",
                message="This API key may not use this route."):
    pass


class ModelNotAllowed(Forbidden, code="model_not_allowed",
                      message="This API key may not use this model."):
    pass


class BudgetExceeded(GatewayError, status=429, code="budget_exceeded",
                     message="The token budget is spent until it resets."):
    """429 without being a RateLimited: OpenAI clients must see `budget_exceeded`, not the
    generic `rate_limit_exceeded`, since retrying soon cannot help."""


class AuthUnavailable(Overloaded, code="auth_unavailable",
                      message="API keys cannot be checked right now; retry shortly."):
    pass
