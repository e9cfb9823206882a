"""Gateway API keys (GATEWAY_AUTH=optional|required): who is calling, and may they.

Runs after routing and before rate limiting, so the key's tenant is the client identity for
limits and budgets. Exactly one gateway key is judged, from `Authorization: Bearer` or `api-key`
(tenants/presented.py), and removed from the request, so it never reaches a backend; any other
gateway key anywhere in the request is a 401 before any lookup. Only a key's prefix appears in
errors and logs.

- required: no key, a malformed key, an unknown, revoked or expired key -> 401.
- optional: no gateway key at all (a backend's own credential is not one) -> the request goes
  on with the usual identity; a gateway key that fails the checks -> 401 all the same, whatever
  other credential sits beside it.
- a key whose `routes` exclude the route -> 403 (its `models` are checked by the model table).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..core.clock import Clock
from ..core.pipeline import Handler, Stage
from ..http.headers import Headers
from ..http.messages import GatewayRequest, GatewayResponse
from ..routing.routes import MATCH
from ..tenants.access import GRANT, Grant, refusal, route_allowed
from ..tenants.cache import KeyCache, LookupsExhausted
from ..tenants.errors import AuthUnavailable, Forbidden, InvalidApiKey
from ..tenants.keys import display, key_hash, prefix_of
from ..tenants.presented import presented
from ..tenants.store import KeyStoreUnavailable
from ..tenants.usage import UsageRecorder

log = logging.getLogger(__name__)
REQUIRED, OPTIONAL = "required", "optional"
OPERATOR_NEEDED = ("This endpoint needs a gateway API key with the operator scope: send it as "
                   "'Authorization: Bearer <key>', 'api-key: <key>' or 'x-api-key: <key>'.")


def tenant_auth_stage(mode: str, cache: KeyCache, recorder: UsageRecorder, clock: Clock,
                      on_first_request: Callable[[], None] = lambda: None) -> Stage:
    """`on_first_request` runs once, inside the event loop (background work starts there)."""
    started = False

    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        nonlocal started
        if not started:
            started = True
            on_first_request()
        judged = await _judged(cache, clock, request)
        if judged is None:
            if mode == REQUIRED:
                raise InvalidApiKey()
            return await call_next(request)  # optional: the usual identity applies
        key, grant = judged
        prefix = grant.key.prefix
        request.headers = Headers((k, v) for k, v in request.headers if key not in v)
        route = MATCH.need(request.context).route.path
        if not route_allowed(grant.key, route):
            raise Forbidden(f"The API key {display(prefix)} may not use the route {route}.")
        # Read by the stages after this one: its tenant is the client (tenants.TenantIdentity),
        # its limits, budgets and models narrow theirs (tenants/limits.py).
        GRANT.set(request.context, grant)
        recorder.record(grant.key.tenant, prefix, clock.now(), requests=1)
        return await call_next(request)

    return stage


async def _judged(cache: KeyCache, clock: Clock, request: GatewayRequest
                  ) -> tuple[str, Grant] | None:
    """(key, grant) of the request's one usable gateway key; None when it presents no gateway
    key at all; 401 for a misplaced or second key, or a malformed, unknown, revoked or expired
    one (tenants/presented.py, tenants/access.py)."""
    found = presented(request.headers, request.raw_path or request.path, request.query)
    if found.problem is not None:
        log.info("refused a request: %s", found.problem)
        raise InvalidApiKey(found.problem)
    if found.key is None:
        return None
    grant = await _grant(cache, found.key)
    reason = refusal(grant.key, clock.now())
    if reason is not None:
        log.info("refused API key %s: %s", display(grant.key.prefix), reason)
        raise InvalidApiKey(f"The API key {display(grant.key.prefix)} is {reason}.")
    return found.key, grant


async def _grant(cache: KeyCache, key: str) -> Grant:
    """The grant of `key` (shaped as a gateway key); 401 when its checksum fails or no record
    has it. The hot path is one hash and one dict read."""
    hashed = key_hash(key)
    grant = cache.peek(hashed)
    if grant is not None:
        return grant
    prefix = prefix_of(key)
    if prefix is None:
        log.info("refused a malformed API key")
        raise InvalidApiKey("The API key is malformed (its checksum does not match).")
    try:
        grant = await cache.grant(hashed)
    except (KeyStoreUnavailable, LookupsExhausted):
        raise AuthUnavailable(headers={"Retry-After": "1"}) from None
    if grant is None:
        log.info("refused API key %s: unknown", display(prefix))
        raise InvalidApiKey(f"The API key {display(prefix)} is unknown.")
    return grant


async def authorize_operator(cache: KeyCache, clock: Clock, request: GatewayRequest) -> None:
    """Whether `request` may read an operator endpoint with GATEWAY_AUTH on (optional as much as
    required): only with a usable gateway key that has the operator scope (docs/SECURITY.md).
    The function key is not enough: in Azure every tenant holds it. 401 without a usable key,
    403 for a key without the scope; returns None when allowed."""
    judged = await _judged(cache, clock, request)
    if judged is None:
        raise InvalidApiKey(OPERATOR_NEEDED)
    grant = judged[1]
    if not grant.key.operator:
        log.info("refused API key %s on an operator endpoint: no operator scope",
                 display(grant.key.prefix))
        raise Forbidden(f"The API key {display(grant.key.prefix)} has no operator scope.")
