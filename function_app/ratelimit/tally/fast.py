"""Tally mode's hot path: a request that every scope's local bucket pays under a current view.

`TallyLimiter._decide_shared` (tally/limiter.py) reaches the same answer through a verdict and
a Judgement per scope, the ledger's look-ups per key and a Decision built per request; here
the same arithmetic is inlined. Anything else (no view, a view old enough that a request might
sync, a key whose share is not computed for this view, a changed limit, a budget, a bucket that
cannot pay) returns None and the full path decides: storage is touched exactly as before.
tests/unit/test_limiter_fast.py checks that both paths leave the same decisions, counters,
buckets and ledger.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from function_app.ratelimit.admitted import admitted
from function_app.ratelimit.bucket import BucketState
from function_app.ratelimit.limits import Decision, ScopedLimit

if TYPE_CHECKING:
    from function_app.ratelimit.tally.limiter import TallyKey
    from function_app.ratelimit.tally.sync import TallySync

# A view at most this many periods old is neither stale (TallySync.stale: a request never
# syncs below STALE_PERIODS - 1, nor below 2 when not sparing) nor unusable (usable).
FRESH_PERIODS = 2

Pick = tuple["TallyKey", float, float]  # a key, its bucket's tokens after the cost, their ts


def admit(keys: dict[tuple[str, str], TallyKey], sync: TallySync,
          scoped: Sequence[ScopedLimit], cost: float, now: float) -> Decision | None:
    """The admitted Decision, with the buckets spent and the demand recorded, when every
    scope pays `cost` from its bucket at the share computed for the current view; else None
    and nothing changed."""
    view = sync.view
    if view is None:
        return None
    period = math.floor(now / sync.period_s)  # Ledger.period
    if period - view.period > FRESH_PERIODS:
        return None
    picks: list[Pick] = []
    for item in scoped:
        limit = item.limit
        tk = keys.get((item.scope, item.key))
        if (tk is None or tk.view is not view or cost > limit.burst or limit.rate <= 0
                or (limit is not tk.limit and limit != tk.limit)):
            return None
        state, local = tk.state, tk.local
        assert state is not None and local is not None  # set with tk.view
        elapsed = now - state.ts  # bucket.refill, then bucket.decide's test
        if elapsed <= 0:
            tokens, ts = (state.tokens if state.tokens <= local.burst else local.burst), state.ts
        else:
            tokens, ts = state.tokens + elapsed * local.rate, now
            tokens = local.burst if local.burst <= tokens else tokens
        if tokens < cost:
            return None
        picks.append((tk, tokens - cost, ts))
    decision = _decision(picks)
    sync.ledger.admitted([(tk.kid, tk.limit.rate) for tk, _, _ in picks], cost, period)
    for tk, tokens, ts in picks:  # TallyKey.spend, and TallyLimiter._key's updates
        tk.state = BucketState(tokens, ts)
        if tk.provisional is not None:
            tk.provisional += cost
        if cost > 0:
            tk.unit = cost
        tk.last_used = now
    return decision


def _decision(picks: list[Pick]) -> Decision:
    """The scope with the least left across instances (TallyLimiter._judge: the bucket's
    tokens over the share, at most burst), the first of equals."""
    best, least = picks[0][0], 0.0
    for n, (tk, tokens, _) in enumerate(picks):
        burst = tk.limit.burst
        if tk.share > 0:
            left = tokens / tk.share
            left = burst if burst <= left else left
        else:
            left = 0.0
        if n == 0 or left < least:
            best, least = tk, left
    return admitted(best, best.scope, best.limit, least)
