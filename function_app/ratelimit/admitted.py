"""The Decision of a request that every scope admitted from memory: both limiters' fast paths
(lease/fast.py, tally/fast.py) end here, so an admission far from binding makes no verdict,
judgement or new Decision when nothing it reports has changed."""

from __future__ import annotations

from typing import Protocol

from function_app.ratelimit.limits import MAX_RETRY_AFTER_S, Decision, Limit


class Holder(Protocol):
    """A key's state that keeps the last Decision made for it."""

    admitted: Decision | None


def admitted(holder: Holder, scope: str, limit: Limit, left: float) -> Decision:
    """What judge.to_decision makes for an admitted request whose tightest scope is `scope`
    with `left` (>= 0) tokens left, no scope degraded and none shadow-denied: remaining
    floor(left), reset bucket.wait_for(left, burst, limit), the same arithmetic inlined.

    The holder's previous Decision is returned when every figure equals the new one (a
    Decision is immutable, so handing out the same one is handing out an equal one); far from
    binding, `left` sits at the burst cap and this is every request.
    """
    missing = limit.burst - left
    if missing <= 0:
        reset = 0.0
    elif limit.rate <= 0:
        reset = MAX_RETRY_AFTER_S
    else:
        reset = missing / limit.rate
        if reset > MAX_RETRY_AFTER_S:
            reset = MAX_RETRY_AFTER_S
    remaining = int(left)  # floor: left is never negative
    last = holder.admitted
    if (last is not None and last.remaining == remaining and last.reset_s == reset
            and last.limit is limit and last.scope == scope):
        return last
    made = holder.admitted = Decision(True, scope, limit, remaining, reset, 0.0, False, False,
                                      None, "ok")
    return made
