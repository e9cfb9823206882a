"""Pure routing decisions: which member next, whether to try again, and how long to wait.

Nothing here does I/O; the clock's reading and a `random.Random` are passed in.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from .pools import Member

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Answers that say the backend refused the work (it did not process it), so even a POST may go
# again; a 502 or 504 from a backend that is itself a proxy may hide work done behind it.
REFUSALS = frozenset({429, 503})
BACKOFF_BASE_S, BACKOFF_CAP_S = 0.025, 0.25
MIN_ATTEMPT_S = 0.05  # a retry that would have less time than this is not worth sending


class Kind(Enum):
    ANSWER = "answer"  # the backend answered with a status
    CONNECT = "connect"  # no connection was made: the backend cannot have seen the request
    RESET = "reset"  # the connection broke before any answer
    TIMEOUT = "timeout"  # no answer within the attempt's time


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    status: int = 0
    retry_after_s: float | None = None
    context_length: bool = False  # a 400 saying the prompt is longer than the model takes

    @property
    def failed(self) -> bool:
        """A failure for the backend's breaker: no answer, or a 5xx."""
        return self.kind is not Kind.ANSWER or self.status >= 500


class _Answers(dict):
    """`ANSWERS[status]`: the Outcome of an answer with `status` and no Retry-After, one shared
    object per status (an Outcome is frozen, so sharing it is safe). A subscript on a made one
    is a dict probe; a frozen dataclass's construction costs about 1 us (each field set through
    `object.__setattr__`), and every successful attempt needs one (docs/perf/pass12-upstream.md).
    Statuses are three digits (aiohttp refuses others), so the table stays small."""

    def __missing__(self, status: int) -> Outcome:
        outcome = Outcome(Kind.ANSWER, status)
        if len(self) < 1000:
            self[status] = outcome
        return outcome


ANSWERS = _Answers()


class Action(Enum):
    RETURN = "return"  # give the client this outcome
    RETRY = "retry"  # another attempt on the same target (a retry: costs budget)
    FALLBACK = "fallback"  # the next target


def failure_class(outcome: Outcome) -> str | None:
    """The fallback class of an outcome ("429", "5xx", "timeout", "context_length") or None."""
    if outcome.kind is Kind.TIMEOUT:
        return "timeout"
    if outcome.kind is not Kind.ANSWER or outcome.status >= 500:
        return "5xx"
    if outcome.status == 429:
        return "429"
    return "context_length" if outcome.context_length else None


def may_repeat(outcome: Outcome, method: str, repeatable: bool) -> bool:
    """Whether sending the request again cannot do the work twice (or the route allows it)."""
    return (method in IDEMPOTENT or repeatable or outcome.kind is Kind.CONNECT
            or (outcome.kind is Kind.ANSWER and outcome.status in REFUSALS))


def decide(outcome: Outcome, *, method: str, repeatable: bool, tries: int, max_tries: int,
           next_fallback_on: frozenset[str] | None) -> Action:
    """What to do after an attempt, before any byte of its answer reached the client.

    `tries` counts the attempts made on the current target; `next_fallback_on` is the next
    target's trigger set (None when there is no next target).
    """
    cls = failure_class(outcome)
    if cls is None:
        return Action.RETURN
    repeat = may_repeat(outcome, method, repeatable)
    retryable = outcome.kind is not Kind.ANSWER or outcome.status in RETRY_STATUSES
    if repeat and retryable and tries < max_tries:
        return Action.RETRY
    # An error answer ends the backend's work, so another target may take the request; after
    # a reset or a timeout the work may still be going on, and only a repeatable request moves.
    finished = outcome.kind is Kind.ANSWER
    if next_fallback_on is not None and cls in next_fallback_on and (repeat or finished):
        return Action.FALLBACK
    return Action.RETURN


def next_delay(retry: int, rng: random.Random, time_left_s: float,
               retry_after_s: float | None = None) -> float | None:
    """Seconds to wait before retry number `retry` (1 for the first), or None when the wait
    would not leave time for the attempt.

    Full-jitter exponential back-off; a backend's Retry-After replaces it when given.
    """
    if retry_after_s is not None:
        delay = max(0.0, retry_after_s)
    else:
        delay = rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (retry - 1)))
    return delay if delay + MIN_ATTEMPT_S <= time_left_s else None


def parse_retry_after(value: str | None, per_s: int = 1) -> float | None:
    """A wait header in seconds, or None when absent, malformed or not under an hour: Retry-After
    (delta-seconds form only; a date is ignored), or with `per_s=1000` retry-after-ms."""
    if value is None:
        return None
    try:
        seconds = float(value.strip()) / per_s
    except ValueError:
        return None
    return seconds if 0 <= seconds < 3600 else None


def pick_backend(members: Sequence[Member], usable: Callable[[Member], bool],
                 outstanding: Mapping[str, int], rng: random.Random,
                 avoid: Collection[str] = ()) -> Member | None:
    """The member for the next attempt, or None when no member is usable.

    Members in `avoid` (already tried for this request) are passed over while another usable
    member exists. Among the usable, only the highest priority (lowest number) counts; in it,
    two members are drawn by weight and the one with fewer outstanding requests per unit of
    weight wins (power of two choices), the first drawn on a tie.
    """
    usable_members = [m for m in members if usable(m)]
    fresh = [m for m in usable_members if m.name not in avoid]
    candidates = fresh or usable_members
    if not candidates:
        return None
    top = min(m.priority for m in candidates)
    tier = [m for m in candidates if m.priority == top]
    if len(tier) == 1:
        return tier[0]
    first = _draw(tier, rng)
    second = _draw([m for m in tier if m is not first], rng)

    def load(member: Member) -> float:
        return outstanding.get(member.name, 0) / member.weight

    return second if load(second) < load(first) else first


def _draw(members: Sequence[Member], rng: random.Random) -> Member:
    point = rng.uniform(0, sum(m.weight for m in members))
    for member in members:
        point -= member.weight
        if point <= 0:
            return member
    return members[-1]
