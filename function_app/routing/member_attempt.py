"""One attempt of a request on one member: its request built, sent, judged and kept or dropped.

The member's request comes from `Router.outbound` (its path, query, credentials); a 401 to an
Entra token is sent once more with a new token. A 400 that says the prompt is too long, and a
stream that fails in its first events, count as the failures they stand for, so the loop can
fall back before a byte goes out. The breaker hears every outcome; a 429 from a member of a pool
with somewhere else to go holds that member out for its Retry-After, on every instance.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..core.errors import GatewayError, Overloaded, UpstreamError, UpstreamTimeout
from ..core.upstream import UpstreamRequest, UpstreamResponse
from ..http.messages import GatewayResponse
from .answer import respond
from .answer_body import buffered, close_quietly
from .attempts import ATTEMPT_OBSERVER, Attempted, answered, failure
from .exchange import Exchange, served_by
from .policy import ANSWERS, Action, Kind, Outcome, decide
from .pools import Member, Target
from .target_request import Outgoing, body_for, upstream_path, upstream_url

CONTEXT_LENGTH_MARK = b"context_length_exceeded"
COOL_DOWN_MAX_S = 60.0  # a member's Retry-After is honoured up to this long


async def attempt(ex: Exchange, member: Member, target: Target, following: Target | None,
                  left: float) -> tuple[Outcome, GatewayResponse | None]:
    """Send to `member` within `left` seconds (the request's time left, read by the loop just
    before); the response when it is the answer to give, else None (the outcome is then held
    in `ex.last` for the loop's decision)."""
    router = ex.router
    ex.tried.add(member.name)
    counts = router.stats.row(ex.route, member.name)  # one look-up for the attempt's counts
    counts["attempts"] += 1
    release = _hold(router.outstanding, member.name)
    try:
        if ex.last is not None and ex.last[1] is not None:
            await _drop_held_answer(ex)
        outcome, answer, error = await _send(ex, member, target, left)
        if answer is not None and (answer.status == 400
                                   or ex.request.context.first_events is not None):
            outcome, answer, error = await _reviewed(ex, outcome, answer, error, following)
        failed = outcome.failed
        if outcome.status == 429 and outcome.kind is Kind.ANSWER and ex.alternatives():
            _cool_down(ex, member, outcome)
        else:
            router.breakers.record(member, not failed)
        if failed:
            counts["failures"] += 1
        ex.last = (outcome, answer, error)
        ex.last_served_by = served_by(member, target)
        # An answer under 400 is never tried again (policy.failure_class gives it no class).
        if answer is None or ((outcome.status >= 400 or outcome.kind is not Kind.ANSWER)
                              and _would_try_again(ex, outcome, following)):
            release()
            return outcome, None
        ex.last = None
        counts["served"] += 1
        return outcome, await respond(ex, answer, member, release)
    except BaseException:
        release()
        raise


def _hold(outstanding: dict[str, int], name: str) -> Callable[[], None]:
    """Count one more request outstanding on `name`; the function returned uncounts it, once."""
    if name in outstanding:  # not `.get(name, 0) + 1`: no call for a member seen before
        outstanding[name] += 1
    else:
        outstanding[name] = 1
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            outstanding[name] -= 1

    return release


async def _drop_held_answer(ex: Exchange) -> None:
    """Close the failed answer held in case every target fails: another attempt replaces it.
    Called only when `ex.last` holds an answer."""
    await close_quietly(ex.last[1].body)
    ex.last = (ex.last[0], None, ex.last[2] or UpstreamError())


async def _reviewed(ex: Exchange, outcome: Outcome, answer: UpstreamResponse,
                    error: GatewayError | None, following: Target | None) -> Attempted:
    """An answer read further when the loop needs it to: a 400 that may be a context-length
    error (when the next target takes those), a stream's first events."""
    if answer.status == 400 and following is not None \
            and "context_length" in following.fallback_on:
        outcome, answer = await _mark_context_length(outcome, answer)
    if 200 <= answer.status < 300 and ex.request.context.first_events is not None:
        outcome, answer, error = await _first_events(ex, outcome, answer)
    return outcome, answer, error


async def _send(ex: Exchange, member: Member, target: Target, left: float) -> Attempted:
    """One exchange with `member` within `left` seconds, classified (attempts.py); a 401 to an
    Entra token is sent once more with a new token (the old one is never sent again)."""
    router, match, request = ex.router, ex.match, ex.request
    observer = ATTEMPT_OBSERVER.get(request.context)
    for fresh_token in (False, True):
        # A token fetch is bounded by what was left when the loop read it, just before.
        prepared = await router.outbound.prepare(
            member, match.upstream_path if target.path is None else upstream_path(match, target),
            ex.query, ex.headers,
            request.content if target.model is None else body_for(target, request.content),
            target.model or ex.body_model, left, ex.key_header)
        outgoing, bound = _outgoing(ex, member, prepared, left)
        send = router.upstream.send
        sending = send(outgoing) if observer is None else observer(outgoing, send)
        try:
            if bound is None:
                answer = await sending
            else:
                async with asyncio.timeout(bound):
                    answer = await sending
        except Overloaded:
            raise
        except (TimeoutError, GatewayError) as exc:
            outcome, answer, error = failure(exc)
        else:  # `answered`'s first case inline (every success), its outcome a shared one
            outcome, answer, error = (ANSWERS[answer.status], answer, None) \
                if answer.status < 400 else answered(answer)
        if fresh_token or answer is None or answer.status != 401 or prepared.token is None \
                or not router.outbound.refused(member, prepared.token):
            break
        await close_quietly(answer.body)
    return outcome, answer, error


def _outgoing(ex: Exchange, member: Member, prepared: Outgoing, left: float
              ) -> tuple[UpstreamRequest, float | None]:
    """The exchange's request, bounded by what is left now (after `prepare`, which may have
    fetched a token; never more than the `left` it was given), and the timeout `_send` arms
    over it (`_attempt_bound`)."""
    now_left = ex.deadline - time.monotonic()  # ex.time_left(), inline: a call per attempt
    if now_left > left:
        now_left = left
    connect = ex.router.connect_timeout_s
    return UpstreamRequest(
        ex.request.method, upstream_url(member.url, prepared.path, prepared.query),
        prepared.headers, prepared.body, connect if connect < now_left else now_left,
        now_left), _attempt_bound(ex.plan.attempt_timeout_s, now_left)


def _attempt_bound(attempt_timeout_s: float | None, left: float) -> float | None:
    """The timeout `_send` arms over the exchange's own: None when the exchange's deadline
    (`left`, which the Upstream keeps) is the nearer one, so one timer bounds the attempt, not
    two; a route's shorter `attempt_timeout_s`, or no time left at all, still arms it."""
    if attempt_timeout_s is not None and attempt_timeout_s < left:
        return attempt_timeout_s
    return None if left > 0 else left


def _cool_down(ex: Exchange, member: Member, outcome: Outcome) -> None:
    """The breaker's view of a 429 from a member of a pool that has somewhere else to go: the
    member is held out for its Retry-After (bounded), on every instance. Any other outcome is
    recorded as a success or a failure (`attempt`)."""
    breakers = ex.router.breakers
    wait = outcome.retry_after_s
    breakers.cool_down(member, min(COOL_DOWN_MAX_S, wait if wait is not None
                                   else breakers.config.open_s))


async def _first_events(ex: Exchange, outcome: Outcome, answer: UpstreamResponse) -> Attempted:
    """A stream that fails in its first events becomes the failed answer it stands for
    (openai/early.py), so the loop retries or falls back before a byte goes out."""
    try:
        async with asyncio.timeout(max(ex.time_left(), 0.001)):
            answer, failure = await ex.request.context.first_events(answer)
    except TimeoutError:
        await close_quietly(answer.body)
        return Outcome(Kind.TIMEOUT), None, UpstreamTimeout()
    except GatewayError as error:  # the stream broke before its first decisive event
        await close_quietly(answer.body)
        return Outcome(Kind.RESET), None, error
    if failure is None:
        return outcome, answer, None
    return Outcome(Kind.ANSWER, failure.status, failure.retry_after_s), answer, None


def _would_try_again(ex: Exchange, outcome: Outcome, following: Target | None) -> bool:
    action = decide(outcome, method=ex.request.method, repeatable=ex.plan.repeatable,
                    tries=0, max_tries=1,
                    next_fallback_on=following.fallback_on if following else None)
    return action is not Action.RETURN


async def _mark_context_length(outcome: Outcome, answer: UpstreamResponse
                               ) -> tuple[Outcome, UpstreamResponse]:
    """Read a 400's (small) body to see whether it is a context-length error."""
    body, answer = await buffered(answer)
    return Outcome(outcome.kind, outcome.status, outcome.retry_after_s,
                   CONTEXT_LENGTH_MARK in body), answer
