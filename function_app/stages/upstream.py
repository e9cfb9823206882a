"""The upstream step: the attempt loop around the backends of the request's plan.

Everything that happens per attempt lives here (pick a member, per-attempt timeout, breaker,
retry, fallback), so the stages before it run once per request whatever happens: the limiter
never charges twice. The loop, in short (the decisions are function_app/routing/policy.py):

- targets in order (the route's pool, then its fallbacks; or the model's pool, then fallback
  models), and within a target a member by `pick_backend`, skipping open breakers and members
  whose last health probe failed (when no member anywhere passes that, probes are ignored);
- each attempt has `attempt_timeout_s` up to the answer's headers, inside the request's deadline
  (`timeout_s`), which also bounds the streamed body;
- a failed attempt (no connection, reset, timeout, 429/502/503/504) is retried on the same
  target while the retry budget allows, for idempotent methods, for a POST the backend cannot
  have processed, or on a route marked idempotent; otherwise the next target is tried when the
  failure is one it takes (fallback_on);
- a 429 from a member of a pool with somewhere else to go holds that member out for its
  retry-after-ms / Retry-After on every instance (its breaker, shared), and the retry goes at
  once to the next member; with every member held out the answer is 429 with the shortest wait;
- members given as objects (Azure OpenAI, keys, Entra tokens) get their own path, query and
  credentials from `Router.outbound` (aoai/outbound.py); a 401 to an Entra token is sent once
  more with a new token;
- nothing is retried once the answer's headers are accepted: the first byte is on its way.

`send_attempt` is the one exchange with one member (the place for a client span per attempt);
`upstream_url` (target_request.py) builds the URL of an attempt.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core.attempts import ATTEMPT_OBSERVER, Observer
from ..core.attempts import send_attempt as observed_send
from ..core.errors import (
    BackendsCoolingDown,
    GatewayError,
    NoHealthyBackend,
    Overloaded,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from ..core.paths import safe_query
from ..core.pipeline import Handler
from ..core.routes import ANTHROPIC_KINDS, MATCH, Match
from ..core.upstream import Upstream, UpstreamRequest, UpstreamResponse
from ..http.forwarding import client_response_headers, strip_function_key, upstream_request_headers
from ..http.messages import GatewayRequest, GatewayResponse
from ..routing.breakers import SharedBreakers
from ..routing.budget import RetryBudget
from ..routing.policy import (
    Action,
    Kind,
    Outcome,
    decide,
    failure_class,
    next_delay,
    parse_retry_after,
)
from ..routing.policy import pick_backend as pick
from ..routing.pools import MEMBER, PLAN, Member, Plan, Target
from ..routing.stats import RoutingStats
from .answer_body import (
    buffered,
    close_quietly,
    complete_body,
    declared_length,
    with_release,
)
from .target_request import Outbound, PlainOutbound, body_for, upstream_path, upstream_url

BACKEND_HEADER = "X-Gateway-Backend"
CONTEXT_LENGTH_MARK = b"context_length_exceeded"
COOL_DOWN_MAX_S = 60.0  # a member's Retry-After is honoured up to this long


@dataclass
class Router:
    """What the attempt loop shares across requests: one per gateway."""

    upstream: Upstream
    breakers: SharedBreakers
    connect_timeout_s: float
    max_tries: int = 2  # attempts per target
    budget: Callable[[], RetryBudget] = RetryBudget
    stats: RoutingStats = field(default_factory=RoutingStats)
    outstanding: dict[str, int] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    budgets: dict[str, RetryBudget] = field(default_factory=dict)
    outbound: Outbound = field(default_factory=PlainOutbound)  # members' wire, credentials

    def budget_for(self, route: str) -> RetryBudget:
        found = self.budgets.get(route)
        if found is None:
            found = self.budgets[route] = self.budget()
        return found


def upstream_step(router: Router) -> Handler:
    async def handle(request: GatewayRequest) -> GatewayResponse:
        return await _Exchange(router, request).run()

    return handle


async def send_attempt(upstream: Upstream, outgoing: UpstreamRequest, attempt_timeout_s: float,
                       observer: Observer | None
                       ) -> tuple[Outcome, UpstreamResponse | None, GatewayError | None]:
    """One attempt: the answer's headers within `attempt_timeout_s`, classified; the telemetry
    `observer` (core/attempts.py) sees it as one client span."""
    try:
        async with asyncio.timeout(attempt_timeout_s):
            answer = await observed_send(observer, upstream.send, outgoing)
    except TimeoutError:
        return Outcome(Kind.TIMEOUT), None, UpstreamTimeout()
    except UpstreamTimeout as error:
        return Outcome(Kind.TIMEOUT), None, error
    except UpstreamConnectError as error:
        return Outcome(Kind.CONNECT), None, error
    except Overloaded:
        raise  # this instance's own pool is full: another attempt would only add to it
    except GatewayError as error:
        return Outcome(Kind.RESET), None, error
    retry_after = _retry_after_ms(answer.headers.get("retry-after-ms"))
    if retry_after is None:
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
    return Outcome(Kind.ANSWER, answer.status, retry_after), answer, None


def _retry_after_ms(value: str | None) -> float | None:
    """Azure's retry-after-ms (and OpenAI's), finer than Retry-After's whole seconds."""
    if value is None:
        return None
    try:
        millis = float(value.strip())
    except ValueError:
        return None
    return millis / 1000 if 0 <= millis < 3_600_000 else None


class _Exchange:
    """One request's way through its plan."""

    def __init__(self, router: Router, request: GatewayRequest):
        self.router, self.request = router, request
        self.match: Match = MATCH.need(request.context)
        self.plan: Plan = PLAN.get(request.context) or self.match.route.plan  # by model, or route
        self.route = self.match.route.path
        self.deadline = time.monotonic() + self.match.route.timeout_s
        self.query = safe_query(strip_function_key(request.query))
        self.headers = upstream_request_headers(
            request.headers, client_host=request.client_host, scheme=request.scheme,
            host=request.headers.get("host"), request_id=request.request_id)
        if "accept-encoding" not in request.headers:
            # Otherwise the client library would ask for gzip on the client's behalf.
            self.headers.set("accept-encoding", "identity")
        # A member's own key goes where the client's API expects it (Anthropic: x-api-key).
        self.key_header = "x-api-key" if self.match.route.kind in ANTHROPIC_KINDS \
            else "authorization"
        self.tried: set[str] = set()
        self.last: tuple[Outcome, UpstreamResponse | None, GatewayError | None] | None = None
        self.last_served_by = ""

    async def run(self) -> GatewayResponse:
        self.router.budget_for(self.route).record_request(time.monotonic())
        self.router.breakers.start()
        for strict in (True, False):  # without probes only when nothing passed them
            for index, target in enumerate(self.plan.targets):
                answer = await self._on_target(index, target, strict)
                if answer is not None:
                    return answer
            if self.last is not None:
                break
        return await self._give_up()

    async def _on_target(self, index: int, target: Target, strict: bool
                         ) -> GatewayResponse | None:
        """The answer to give from this target, or None to go on to the next one."""
        tries = 0
        following = self.plan.targets[index + 1] if index + 1 < len(self.plan.targets) else None
        while True:
            member = self._pick(target, strict)
            if member is None:
                return None
            if tries:
                delay = self._retry_delay(tries, member, following)
                if delay is None:
                    return None if self._falls_back(following) else await self._give_up()
                await asyncio.sleep(delay)
            elif index:
                self.router.stats.add(self.route, member.name, "fallbacks")
            if self._time_left() <= 0:
                return await self._give_up()
            tries += 1
            outcome, answer = await self._attempt(member, target, following)
            if answer is not None:
                return answer
            action = decide(outcome, method=self.request.method,
                            repeatable=self.plan.repeatable, tries=tries,
                            max_tries=self.router.max_tries,
                            next_fallback_on=following.fallback_on if following else None)
            if action is Action.RETURN:
                return await self._give_up()
            if action is Action.FALLBACK:
                return None

    def _pick(self, target: Target, strict: bool) -> Member | None:
        breakers = self.router.breakers
        member = pick(target.members, lambda m: breakers.usable(m, strict),
                      self.router.outstanding, self.router.rng, self.tried)
        if member is None or not breakers.acquire(member):
            return None
        return member

    def _retry_delay(self, tries: int, member: Member, following: Target | None
                     ) -> float | None:
        """The wait before a retry, or None when the budget or the deadline refuses it."""
        outcome = self.last[0] if self.last else None
        # A backend's Retry-After is about that backend: it matters only when going back to it,
        # and a fallback that takes the failure is better than waiting for it.
        after = outcome.retry_after_s if outcome and member.name in self.tried else None
        if after and self._falls_back(following):
            return None
        if outcome is not None and outcome.status == 429 and member.name not in self.tried:
            after = 0.0  # another member, not the one that refused: no reason to wait
        delay = next_delay(tries, self.router.rng, self._time_left(), after)
        if delay is None:
            return None
        if not self.router.budget_for(self.route).try_spend(time.monotonic()):
            self.router.stats.add(self.route, member.name, "budget_refusals")
            return None
        self.router.stats.add(self.route, member.name, "retries")
        return delay

    def _falls_back(self, following: Target | None) -> bool:
        if following is None:
            return False
        outcome = self.last[0] if self.last else None
        return outcome is not None and failure_class(outcome) in following.fallback_on

    async def _attempt(self, member: Member, target: Target, following: Target | None
                       ) -> tuple[Outcome, GatewayResponse | None]:
        """Send to `member`; the response when it is the answer to give, else None."""
        router, left = self.router, self._time_left()
        self.tried.add(member.name)
        router.stats.add(self.route, member.name, "attempts")
        router.outstanding[member.name] = router.outstanding.get(member.name, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                router.outstanding[member.name] -= 1

        try:
            if self.last is not None and self.last[1] is not None:
                await close_quietly(self.last[1].body)  # an answer held in case all fail
                self.last = (self.last[0], None, self.last[2] or UpstreamError())
            outcome, answer, error = await self._send(member, target, left)
            if answer is not None and answer.status == 400 and following is not None \
                    and "context_length" in following.fallback_on:
                outcome, answer = await _mark_context_length(outcome, answer)
            if answer is not None and 200 <= answer.status < 300 \
                    and self.request.context.first_events is not None:
                outcome, answer, error = await self._first_events(outcome, answer)
            self._judge(member, outcome)
            if outcome.failed:
                router.stats.add(self.route, member.name, "failures")
            self.last = (outcome, answer, error)
            self.last_served_by = _served_by(member, target)
            if answer is None or self._would_try_again(outcome, target, following):
                release()
                return outcome, None
            self.last = None
            router.stats.add(self.route, member.name, "served")
            return outcome, await self._respond(answer, member, target, release)
        except BaseException:
            release()
            raise

    async def _send(self, member: Member, target: Target, left: float
                    ) -> tuple[Outcome, UpstreamResponse | None, GatewayError | None]:
        """One exchange with `member`; a 401 to an Entra token is sent once more with a new
        token (the old one is never sent again)."""
        router = self.router
        for fresh_token in (False, True):
            prepared = await router.outbound.prepare(
                member, upstream_path(self.match, target), self.query, self.headers,
                body_for(target, self.request.content), self._model(target), self._time_left(),
                self.key_header)
            outgoing = UpstreamRequest(
                self.request.method, upstream_url(member.url, prepared.path, prepared.query),
                prepared.headers, prepared.body, min(router.connect_timeout_s, left), left)
            attempt_s = min(self.plan.attempt_timeout_s or left, self._time_left())
            outcome, answer, error = await send_attempt(
                router.upstream, outgoing, attempt_s, ATTEMPT_OBSERVER.get(self.request.context))
            if fresh_token or answer is None or answer.status != 401 or prepared.token is None \
                    or not router.outbound.refused(member, prepared.token):
                break
            await close_quietly(answer.body)
        return outcome, answer, error

    def _model(self, target: Target) -> str:
        body = self.request.context.json
        model = body.get("model") if isinstance(body, dict) else None
        return target.model or (model if isinstance(model, str) else "")

    def _judge(self, member: Member, outcome: Outcome) -> None:
        """The breaker's view of an attempt: a 429 from a member of a pool that has somewhere
        else to go holds the member out for its Retry-After (bounded), on every instance."""
        breakers = self.router.breakers
        if outcome.kind is Kind.ANSWER and outcome.status == 429 and self._alternatives():
            wait = outcome.retry_after_s
            breakers.cool_down(member, min(COOL_DOWN_MAX_S, wait if wait is not None
                                           else breakers.config.open_s))
            return
        breakers.record(member, not outcome.failed)

    def _alternatives(self) -> bool:
        return sum(len(t.members) for t in self.plan.targets) > 1

    async def _first_events(self, outcome: Outcome, answer: UpstreamResponse
                            ) -> tuple[Outcome, UpstreamResponse | None, GatewayError | None]:
        """A stream that fails in its first events becomes the failed answer it stands for
        (openai/early.py), so the loop retries or falls back before a byte goes out."""
        try:
            async with asyncio.timeout(max(self._time_left(), 0.001)):
                answer, failure = await self.request.context.first_events(answer)
        except TimeoutError:
            await close_quietly(answer.body)
            return Outcome(Kind.TIMEOUT), None, UpstreamTimeout()
        except GatewayError as error:  # the stream broke before its first decisive event
            await close_quietly(answer.body)
            return Outcome(Kind.RESET), None, error
        if failure is None:
            return outcome, answer, None
        return Outcome(Kind.ANSWER, failure.status, failure.retry_after_s), answer, None

    def _would_try_again(self, outcome: Outcome, target: Target, following: Target | None
                         ) -> bool:
        action = decide(outcome, method=self.request.method, repeatable=self.plan.repeatable,
                        tries=0, max_tries=1, next_fallback_on=following.fallback_on
                        if following else None)
        return action is not Action.RETURN

    async def _respond(self, answer: UpstreamResponse, member: Member, target: Target,
                       release: Callable[[], None]) -> GatewayResponse:
        body = await complete_body(answer.body, declared_length(answer.headers))
        if isinstance(body, bytes | bytearray):
            release()
        else:
            body = with_release(body, release)
        headers = client_response_headers(answer.headers)
        served_by = _served_by(member, target)
        self.request.context.served_by = served_by  # for telemetry's backend label
        MEMBER.set(self.request.context, member)
        headers.add(BACKEND_HEADER, served_by)
        return GatewayResponse(answer.status, headers, body)

    async def _give_up(self) -> GatewayResponse:
        """The last answer as it came, or its error; with no attempt at all, 503 (429 with the
        shortest wait when every member is cooling down after a 429)."""
        wait = self.router.breakers.shortest_wait(
            [m for t in self.plan.targets for m in t.members]) if self._alternatives() else None
        if self.last is None:
            if wait is not None:
                raise BackendsCoolingDown(headers=_wait_headers(wait))
            raise NoHealthyBackend()
        _, answer, error = self.last
        if answer is not None:
            self.last = None
            headers = client_response_headers(answer.headers)
            if answer.status == 429 and wait is not None:
                for name, value in _wait_headers(wait).items():
                    headers.set(name, value)  # the member back first, not the last one asked
            headers.add(BACKEND_HEADER, self.last_served_by)
            self.request.context.served_by = self.last_served_by
            body = await complete_body(answer.body, declared_length(answer.headers))
            return GatewayResponse(answer.status, headers, body)
        raise error or UpstreamTimeout()

    def _time_left(self) -> float:
        return self.deadline - time.monotonic()


def _wait_headers(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait))),
            "retry-after-ms": str(max(1, round(wait * 1000)))}


async def _mark_context_length(outcome: Outcome, answer: UpstreamResponse
                               ) -> tuple[Outcome, UpstreamResponse]:
    """Read a 400's (small) body to see whether it is a context-length error."""
    body, answer = await buffered(answer)
    return Outcome(outcome.kind, outcome.status, outcome.retry_after_s,
                   CONTEXT_LENGTH_MARK in body), answer


def _served_by(member: Member, target: Target) -> str:
    # A member named by its URL is shown by its model's name: no internal address leaves.
    return target.label if "://" in member.name else member.name
