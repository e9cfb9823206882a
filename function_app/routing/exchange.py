"""One request's way through its plan: the state its attempts share.

The stages before the upstream step run once per request; an `Exchange` is built once per
request too, and every attempt (upstream.py's loop, member_attempt.py) reads and updates it:
the deadline, the headers and query as forwarded, the members tried, and the last failed
answer, held in case every target fails.
"""

from __future__ import annotations

import time

from ..core.paths import safe_query
from ..http.forwarding import strip_function_key, upstream_request_headers
from ..http.messages import GatewayRequest
from .attempts import Attempted
from .policy import Outcome, failure_class
from .pools import PLAN, Member, Plan, Target
from .router import Router
from .routes import ANTHROPIC_KINDS, MATCH, Match


class Exchange:
    """One request's state across its attempts."""

    __slots__ = ("body_model", "deadline", "headers", "key_header", "last", "last_served_by",
                 "match", "plan", "query", "request", "route", "router", "started", "timeout_s",
                 "tried")

    def __init__(self, router: Router, request: GatewayRequest):
        self.router, self.request = router, request
        self.match: Match = MATCH.need(request.context)
        route = self.match.route
        self.plan: Plan = PLAN.get(request.context) or route.plan  # by model, or the route's
        self.route = route.path
        self.started = time.monotonic()  # the retry budget counts the request at this reading
        self.timeout_s = route.timeout_s
        self.deadline = self.started + self.timeout_s
        self.query = safe_query(strip_function_key(request.query))
        self.headers = upstream_request_headers(
            request.headers, client_host=request.client_host, scheme=request.scheme,
            host=request.headers.get("host"), request_id=request.request_id)
        if "accept-encoding" not in request.headers:
            # Otherwise the client library would ask for gzip on the client's behalf.
            self.headers.set("accept-encoding", "identity")
        # A member's own key goes where the client's API expects it (Anthropic: x-api-key).
        self.key_header = "x-api-key" if route.kind in ANTHROPIC_KINDS else "authorization"
        # The body's model, for a target without a model of its own (`model`): every attempt
        # names one to the Outbound.
        # (`type(x) is` first: no isinstance call for what json.loads makes)
        body = request.context.json
        model = body.get("model") if body is not None and (
            type(body) is dict or isinstance(body, dict)) else None
        self.body_model = model if model is not None and (
            type(model) is str or isinstance(model, str)) else ""
        self.tried: set[str] = set()
        self.last: Attempted | None = None
        self.last_served_by = ""

    @property
    def last_outcome(self) -> Outcome | None:
        return self.last[0] if self.last else None

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def alternatives(self) -> bool:
        """Whether the plan has more than one member to send to."""
        return sum(len(t.members) for t in self.plan.targets) > 1

    def falls_back(self, following: Target | None) -> bool:
        """Whether the last failure is one the `following` target takes."""
        outcome = self.last_outcome
        return following is not None and outcome is not None \
            and failure_class(outcome) in following.fallback_on

    def model(self, target: Target) -> str:
        """The model an attempt on `target` asks for: a fallback's own, else the body's."""
        return target.model or self.body_model


def served_by(member: Member, target: Target) -> str:
    """The backend name shown to the client (X-Gateway-Backend) and in telemetry."""
    # A member named by its URL is shown by its model's name: no internal address leaves.
    return target.label if "://" in member.name else member.name
