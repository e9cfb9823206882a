"""Rate-limit response headers from a decision (IETF httpapi RateLimit draft, plus X-RateLimit-*).

A token bucket of rate r and burst b is advertised as a quota of b per window of b / r seconds;
`t` and X-RateLimit-Reset are seconds until the bucket is full again.
"""

from __future__ import annotations

import math

from function_app.ratelimit.limits import Decision


def rate_limit_headers(decision: Decision) -> list[tuple[str, str]]:
    """Headers for a decided request; none when no limit applied."""
    if decision.limit is None or decision.scope is None:
        return []
    limit, scope = decision.limit, decision.scope
    window = max(1, math.ceil(limit.burst / limit.rate)) if limit.rate > 0 else 3600
    quota = int(limit.burst)
    remaining = max(0, int(decision.remaining))
    reset = max(0, math.ceil(decision.reset_s))
    return [
        ("RateLimit-Policy", f'"{scope}";q={quota};w={window}'),
        ("RateLimit", f'"{scope}";r={remaining};t={reset}'),
        ("RateLimit-Scope", scope),
        ("X-RateLimit-Limit", str(quota)),
        ("X-RateLimit-Remaining", str(remaining)),
        ("X-RateLimit-Reset", str(reset)),
    ]


def rate_limit_fields(decision: Decision) -> dict[str, tuple[str, ...]]:
    """`rate_limit_headers` as header fields (Headers.update_fields): lower-case names."""
    return {name.lower(): (value,) for name, value in rate_limit_headers(decision)}


def retry_after(decision: Decision) -> str:
    """Whole seconds, at least 1: a client that retries sooner is denied again."""
    return str(max(1, math.ceil(decision.retry_after_s)))
