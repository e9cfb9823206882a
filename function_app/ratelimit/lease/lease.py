"""Pure lease maths: instances take blocks of tokens from a shared row and spend them locally.

A shared row holds a token bucket plus its holders (instances with an unexpired lease). `take`
grants an instance at most its cap: a fair share of the row or a block, plus what its waiting
requests need; `returned` gives unused tokens back. How a lease is sized, and the proof of the
overshoot bound these rules keep: docs/RATELIMITS.md ("Lease mode: how a lease is sized").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from function_app.ratelimit.bucket import BucketState, refill, wait_for
from function_app.ratelimit.limits import Limit, clamp_wait

# A lease's share is at least this fraction of burst: token limits (burst = a minute of rate)
# would otherwise lease rate * lease_s, a few hundred tokens, under one reservation.
BURST_SHARE = 1 / 32
MIN_GRANT = 0.5  # smallest useful lease, as a fraction of the goal: bounds writes per token
# Every holder may hold a block of this many requests (of its typical cost) whatever the number
# of holders: a fair share alone (S / N) shrinks as instances multiply, and storage operations
# per admitted request then grow with N (issue #10, section 2). Capped at BLOCK_BURST_SHARE of
# burst so a small limit is not handed out whole to the first instances.
BLOCK_REQUESTS = 128
BLOCK_BURST_SHARE = 1 / 3
# A holder entry outlives the holder's own pool expiry by this much, so other instances whose
# clocks run up to this far ahead still count it while it can spend (the bound: the d term in
# docs/RATELIMITS.md).
SKEW_MARGIN_S = 0.5
# A saturated shared row makes an instance wait for its turn, at most this long (a Retry-After
# clients can live with), unless its own request takes longer to accrue.
FAIR_WAIT_MAX_S = 2.0


@dataclass(frozen=True)
class Row:
    """A shared bucket row: tokens at ts, the limit it was last written with, lease holders."""

    tokens: float
    ts: float
    rate: float
    burst: float
    holders: Mapping[str, float] = field(default_factory=dict)
    # A budget's row in tally mode: the last period whose pots the aggregator granted from it
    # (tally/potgrants.py); kept by every write so a second aggregator never grants again.
    pot: int = -1


@dataclass(frozen=True)
class Grant:
    """Result of asking a row for tokens.

    tokens: granted now (0 when nothing is written; then `row` is None).
    row: the state to write conditionally, or None. wait_s: when nothing was granted, seconds
    until the row should hold enough. available: tokens left in the row after the grant.
    cap: the fair-share cap on the asker's pool that was applied.
    short: nothing was granted because the row cannot pay (the asker must wait wait_s). False
    with row None means no write was needed: the pool already pays the request and a top-up
    would be too small to be worth a write; that is not a shortage and must not deny anyone.
    """

    tokens: float
    row: Row | None
    wait_s: float
    available: float
    cap: float
    short: bool = False


def fresh_row(limit: Limit, now: float) -> Row:
    return Row(limit.burst, now, limit.rate, limit.burst, {})


def fair_cap(limit: Limit, lease_s: float, active: int, cost: float, unit: float = 0.0) -> float:
    """The most tokens one instance may hold: one request's cost plus the larger of its share
    of lease_s seconds of rate and a block of BLOCK_REQUESTS requests of cost `unit`.

    Never more than burst (a row cannot give more) and never less than cost (or no request of
    that cost could be served). The cost sits on top of the share, not inside it: a token
    reservation (about DEFAULT_MAX_TOKENS) is often larger than rate * lease_s, and a cap of
    one cost made nearly every such request lease (issue #10, section 1).
    """
    share = max(lease_slice(limit, lease_s) / max(1, active), block(limit, unit))
    return max(cost, min(limit.burst, cost + share))


def block(limit: Limit, unit: float) -> float:
    """B = min(BLOCK_REQUESTS * unit, burst * BLOCK_BURST_SHARE): what any holder may hold
    beyond its waiting cost however many holders there are (0 without a typical cost)."""
    return min(BLOCK_REQUESTS * max(0.0, unit), limit.burst * BLOCK_BURST_SHARE)


def lease_slice(limit: Limit, lease_s: float) -> float:
    """S = max(rate * lease_s, burst * BURST_SHARE): what one lease may hold beyond its cost,
    shared among the active holders. Request limits (burst ~ 2 s of rate) keep rate * lease_s."""
    return max(limit.rate * lease_s, limit.burst * BURST_SHARE)


def _live_holders(row: Row, instance: str, now: float) -> dict[str, float]:
    return {who: until for who, until in row.holders.items() if until > now and who != instance}


def take(
    row: Row | None, limit: Limit, *, held: float, target: float, cost: float,
    instance: str, now: float, lease_s: float, ttl_s: float, unit: float | None = None,
    waiting: float = 0.0, blocks: bool = True, least: float | None = None,
) -> Grant:
    """Top the pool (`held` tokens) up towards `target`, within the fair cap.

    `cost` > 0 means requests are waiting: cost - held is what pays them all. `least` (default
    `cost`) is the smallest of them: a grant that pays at least least - held is made even when
    the row cannot pay all of `cost`, so a pile of waiters larger than the bucket admits what
    fits instead of nobody (issue #22, item 1); below that nothing is granted (`short`). If
    `held` already pays the cost, a small top-up is skipped without being short.
    `waiting` is the cost of every request at this instance waiting for this lease: the cap
    makes room for all of them (on top of the share), so they need one write, not one each.
    Without one (a background top-up, where `unit` is the typical request cost) a grant is at
    least MIN_GRANT of the goal's share part, min(target, cap) - unit, so one write moves a
    useful block. Grants are whole tokens. When nothing is granted, `wait_s` says when to come
    back for `least` (see _short_wait).
    """
    current = row if row is not None else fresh_row(limit, now)
    others = _live_holders(current, instance, now)
    unit = cost if unit is None or cost > 0 else unit
    # Requests already waiting at this instance may all be paid by this one write.
    bucket = refill(BucketState(current.tokens, current.ts), limit, now)
    cap = fair_cap(limit, lease_s, len(others) + 1, max(unit, waiting), unit if blocks else 0.0)
    need = max(0.0, cost - held)
    first = max(0.0, math.ceil(min(cost, cost if least is None else least) - held - 1e-9))
    goal = min(target, cap)
    want = max(math.ceil(need - 1e-9), goal - held)  # whole tokens: a fraction of need is one
    if want <= 0:
        return Grant(0.0, None, 0.0, bucket.tokens, cap)
    # Whole tokens only: fractions stay in the row, where they keep growing, instead of being
    # stranded in pools too small to pay for a request.
    granted = float(math.floor(min(want, bucket.tokens) + 1e-9))
    # A waiting request takes what pays for it. With other holders on the row it takes at least
    # MIN_GRANT of what it wanted: crumbs of a saturated row shared by many instances would make
    # every admitted request a write (issue #10, section 2); it waits instead until a useful
    # block has accrued (_fair_wait), and the crumbs stay in the row for whoever comes first.
    # Alone on the row it takes crumbs: nobody else would, and a lone instance stays exact.
    # A top-up alone also waits for a useful block.
    if need > 0:
        floor = _useful(min(want, limit.burst), limit, len(others) + 1) if others else 0.0
        enough = granted >= max(first, floor)
        short = not enough
    else:
        enough = granted >= max(goal - unit, 1.0) * MIN_GRANT
        # Too small a block is only a shortage when the row could not pay more: otherwise the
        # pool is nearly full, and calling that "short" would deny requests (section 6).
        short = cost <= 0 and bucket.tokens < want
    if granted <= 0 or not enough:
        if not short:
            return Grant(0.0, None, 0.0, bucket.tokens, cap)
        wait = _short_wait(bucket.tokens, want, first if need > 0 else 0.0, len(others), limit)
        return Grant(0.0, None, wait, bucket.tokens, cap, short=True)
    others[instance] = now + ttl_s + SKEW_MARGIN_S
    new_row = Row(bucket.tokens - granted, bucket.ts, limit.rate, limit.burst, others,
                  current.pot)
    return Grant(granted, new_row, 0.0, new_row.tokens, cap)


def _useful(want: float, limit: Limit, active: int) -> float:
    """The smallest grant worth a write at a short row: MIN_GRANT of what was wanted, but never
    more than this instance's share of FAIR_WAIT_MAX_S of refill (else it could wait forever
    for tokens parked in other instances' pools)."""
    return float(math.floor(min(want * MIN_GRANT, limit.rate * FAIR_WAIT_MAX_S / active)))


def _short_wait(tokens: float, want: float, first: float, others: int, limit: Limit) -> float:
    """When to come back to a row that could not pay. For waiting requests (`first` > 0, what
    the smallest of them still needs) alone on the row: when that need, and at least half a
    block, has accrued; one write then admits several, where coming back for each request would
    make a saturated key cost a write per admitted request (a client at its limit of 500/s: 500
    writes/s). Shared, or for a top-up: when its turn for a block has come. `want` counts at
    most a bucket: a pile larger than the bucket is not a request that can never fit (that
    waited "never", issue #22 item 1); only a smallest need above the bucket does."""
    want = min(want, max(first, limit.burst))
    if first > 0 and not others:
        return wait_for(tokens, max(1.0, first, _useful(want, limit, 1)), limit)
    return _fair_wait(tokens, max(first, want), others + 1, limit)


def _fair_wait(tokens: float, want: float, active: int, limit: Limit) -> float:
    """When `want` should have accrued at this instance's 1/active share of the refill, and at
    most FAIR_WAIT_MAX_S: a key whose tokens sit in other instances' pools is not saturated,
    and an instance must not be shut out for the time a whole block takes to accrue.

    A row this empty means the limit is saturated: waiting that long loses no tokens (the row
    is far from full) and makes each write move about a block. The share is of time, not of
    the row: when active blocks add up to more than burst, the instances still take turns at
    about one block each per want * active / rate (capping that at burst / rate made half of
    the polls of six instances find the row short).
    """
    want = max(1.0, want)
    if want > limit.burst or limit.rate <= 0:
        return wait_for(tokens, want, limit)  # never: reported as the maximum wait
    turn = (want * active - tokens) / limit.rate
    return clamp_wait(min(turn, FAIR_WAIT_MAX_S))


def returned(row: Row | None, limit: Limit, tokens: float, instance: str, now: float) -> Row:
    """The row after `instance` returns `tokens` and drops its lease; never above burst."""
    current = row if row is not None else fresh_row(limit, now)
    bucket = refill(BucketState(current.tokens, current.ts), limit, now)
    holders = _live_holders(current, instance, now)
    new_tokens = min(limit.burst, bucket.tokens + max(0.0, tokens))
    return Row(new_tokens, bucket.ts, limit.rate, limit.burst, holders, current.pot)


def is_idle(row: Row, now: float, idle_s: float) -> bool:
    """Safe to delete: untouched for idle_s, no live lease, and full (so deleting loses nothing)."""
    if now - row.ts < idle_s or any(until > now for until in row.holders.values()):
        return False
    tokens = row.tokens + max(0.0, now - row.ts) * row.rate
    return tokens >= row.burst


def shard_limit(limit: Limit, shards: int) -> Limit:
    """The limit of one of `shards` equal rows."""
    n = max(1, shards)
    return Limit(limit.rate / n, limit.burst / n, limit.shadow)


def row_to_fields(row: Row) -> dict[str, float | str]:
    fields: dict[str, float | str] = {
        "tokens": float(row.tokens), "ts": float(row.ts), "rate": float(row.rate),
        "burst": float(row.burst),
        "holders": json.dumps(dict(row.holders), separators=(",", ":")),
    }
    if row.pot >= 0:
        fields["pot"] = float(row.pot)
    return fields


def row_from_fields(fields: Mapping[str, object]) -> Row:
    """Parse a stored row; raises ValueError on a malformed one."""
    try:
        holders = json.loads(str(fields.get("holders") or "{}"))
        values = [float(fields[name]) for name in ("tokens", "ts", "rate", "burst")]
        pot = int(float(fields.get("pot", -1)))  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, OverflowError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed rate-limit row: {exc}") from None
    if not isinstance(holders, dict) or not all(math.isfinite(v) for v in values):
        raise ValueError("malformed rate-limit row")
    return Row(*values, {str(k): float(v) for k, v in holders.items()}, pot)
