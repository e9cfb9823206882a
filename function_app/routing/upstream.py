"""The upstream step: the attempt loop around the backends of the request's plan.

Everything that happens per attempt lives in the upstream step (this module and those named at
the end: pick a member, per-attempt timeout, breaker, retry, fallback), so the stages before it
run once per request whatever happens: the limiter never charges twice. The loop, in short
(the decisions are function_app/routing/policy.py):

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
  credentials from `Router.outbound` (aoai/outbound.py, passed in by the wiring); a 401 to an
  Entra token is sent once more with a new token;
- nothing is retried once the answer's headers are accepted: the first byte is on its way.

Where each part lives: the loop over targets and members is here; the parts shared across
requests (`Router`) in router.py; one request's state in exchange.py; one attempt on a member in
member_attempt.py (`_send`: one exchange with it, through the telemetry observer, a client
span per attempt; classified by attempts.py); the answer given in answer.py; the request an
attempt sends in target_request.py.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial

from ..core.pipeline import Handler
from ..http.messages import GatewayRequest, GatewayResponse
from .answer import give_up
from .exchange import Exchange
from .member_attempt import attempt
from .policy import Action, decide, next_delay
from .policy import pick_backend as pick
from .pools import Member, Target
from .router import Router


def upstream_step(router: Router) -> Handler:
    # The loop's coroutine is the step itself (no function of its own around it).
    return partial(_run, router)


async def _run(router: Router, request: GatewayRequest) -> GatewayResponse:
    """The plan's targets in order, first among members that passed their probes, then (only
    when nothing passed them) among all; within a target, members and retries until one
    answers, the failure falls back, or the budget or the deadline says no.

    One loop for every plan, a lone member's included (the common case): its coroutine is the
    only frame of the step above the attempt, so a plan of one member costs no frame a
    larger one does not, and no second path exists to diverge from this one."""
    ex = Exchange(router, request)
    # The request counts for the retry budget as it starts, at the clock reading its deadline
    # was set from.
    router.budget_for(ex.route).record_request(ex.started)
    router.breakers.start()
    targets = ex.plan.targets
    last = len(targets) - 1
    for strict in (True, False):
        for index, target in enumerate(targets):
            following = targets[index + 1] if index < last else None
            tries = 0  # attempts made on this target
            while (member := _pick(ex, target, strict)) is not None:
                if tries:
                    delay = _retry_delay(ex, tries, member, following)
                    if delay is None:
                        if ex.falls_back(following):
                            break  # the next target
                        return await give_up(ex)
                    await asyncio.sleep(delay)
                elif index:
                    router.stats.add(ex.route, member.name, "fallbacks")
                # The first attempt starts at the reading the deadline was set from (nothing
                # waited since): the route's whole timeout, without reading the clock again.
                left = ex.time_left() if ex.tried else ex.timeout_s
                if left <= 0:
                    return await give_up(ex)
                tries += 1
                outcome, answer = await attempt(ex, member, target, following, left)
                if answer is not None:
                    return answer
                action = decide(outcome, method=request.method, repeatable=ex.plan.repeatable,
                                tries=tries, max_tries=router.max_tries,
                                next_fallback_on=following.fallback_on if following else None)
                if action is Action.RETURN:
                    return await give_up(ex)
                if action is Action.FALLBACK:
                    break
        if ex.last is not None:
            break
    return await give_up(ex)


def _pick(ex: Exchange, target: Target, strict: bool) -> Member | None:
    members = target.members
    if len(members) == 1:  # what pick_backend gives among one: it, when usable
        return members[0] if ex.router.breakers.take(members[0], strict) else None
    breakers = ex.router.breakers
    member = pick(members, lambda m: breakers.usable(m, strict),
                  ex.router.outstanding, ex.router.rng, ex.tried)
    if member is None or not breakers.acquire(member):
        return None
    return member


def _retry_delay(ex: Exchange, tries: int, member: Member, following: Target | None
                 ) -> float | None:
    """The wait before a retry, or None when the budget or the deadline refuses it."""
    outcome = ex.last_outcome
    # A backend's Retry-After is about that backend: it matters only when going back to it,
    # and a fallback that takes the failure is better than waiting for it.
    after = outcome.retry_after_s if outcome and member.name in ex.tried else None
    if after and ex.falls_back(following):
        return None
    if outcome is not None and outcome.status == 429 and member.name not in ex.tried:
        after = 0.0  # another member, not the one that refused: no reason to wait
    delay = next_delay(tries, ex.router.rng, ex.time_left(), after)
    if delay is None:
        return None
    if not ex.router.budget_for(ex.route).try_spend(time.monotonic()):
        ex.router.stats.add(ex.route, member.name, "budget_refusals")
        return None
    ex.router.stats.add(ex.route, member.name, "retries")
    return delay
