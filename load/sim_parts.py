"""The simulator's parts (load/simulate.py): Zipf popularity, skewed clocks, request costs,
the exact reference limiter, and the aggregator's real CPU and payload, measured."""

from __future__ import annotations

import bisect
import itertools
import random
import time

from function_app.ratelimit import bucket
from function_app.ratelimit.limits import ScopedLimit
from function_app.ratelimit.tally import aggregator as tally_aggregator

HOPPERS = 10  # with --hop, every HOPPERS-th client (the busiest among them) is pinned and hops
AGGREGATIONS: list[tuple[float, int]] = []  # (CPU seconds, characters read) per aggregation
_real_sum = tally_aggregator.Aggregator._sum


def _timed_sum(self, stored, *rest):
    started = time.process_time()
    out = _real_sum(self, stored, *rest)
    chars = sum(len(str(v)) for row in stored for v in row.fields.values())
    AGGREGATIONS.append((time.process_time() - started, chars))
    return out


def instrument() -> None:
    """The aggregator's worker thread would let virtual time pass while it sums: keep it on
    the loop, so a run stays deterministic for its seed, and measure its CPU and the
    characters it decodes (AGGREGATIONS), as the thread would spend them."""
    tally_aggregator.OFFLOAD = False
    tally_aggregator.Aggregator._sum = _timed_sum
    AGGREGATIONS.clear()


def zipf_weights(n: int, s: float, rng: random.Random) -> list[float]:
    weights = [1 / (k + 1) ** s for k in range(n)]
    rng.shuffle(weights)
    return weights


def zipf_cumulative(n: int, s: float, rng: random.Random) -> list[float]:
    return list(itertools.accumulate(zipf_weights(n, s, rng)))


def pick(cumulative: list[float], rng: random.Random) -> int:
    return bisect.bisect_left(cumulative, rng.random() * cumulative[-1])


def skew_of(k: int, skew: float) -> float:
    """A fifth of the instances run `skew` ahead, a fifth as far behind, the rest on time."""
    return (0.0, skew, -skew, 0.0, 0.0)[k % 5] if skew else 0.0


def request_cost(args, rng: random.Random) -> tuple[float, float]:
    """(reserved, refunded) of one request: 1 and 0, or with --tokens a reservation of up to
    --tokens settled at once with a refund of a random part of it (max_tokens vs usage)."""
    if not args.tokens:
        return 1.0, 0.0
    reserved = rng.uniform(0.1, 1.0) * args.tokens
    return reserved, rng.uniform(0.0, 0.9) * reserved


class Exact:
    """The reference: exact buckets fed the same arrivals (all-or-nothing over both scopes)."""

    def __init__(self) -> None:
        self.states: dict[str, bucket.BucketState] = {}

    def refund(self, scoped: list[ScopedLimit], amount: float) -> bool:
        """Give `amount` back to every scope of an admitted request (True: chains in `if`)."""
        for s in scoped:
            self.states[s.key] = bucket.settled(self.states[s.key], s.limit.burst, -amount)
        return True

    def admits(self, scoped: list[ScopedLimit], now: float, cost: float = 1.0) -> bool:
        verdicts = [bucket.decide(self.states.get(s.key), s.limit, cost, now) for s in scoped]
        if all(v.allowed for v, _ in verdicts):
            for s, (_, state) in zip(scoped, verdicts, strict=True):
                self.states[s.key] = state
            return True
        return False



def poisson(mean: float, rng: random.Random) -> int:
    # Knuth's method is fine for the small means of one step (rps * STEP_S <= ~40).
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
