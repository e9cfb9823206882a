"""What one instance knows about one (scope, key): its leased pool and its view of the row."""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field

from function_app.ratelimit.bucket import BucketState
from function_app.ratelimit.lease import demand as demand_
from function_app.ratelimit.lease.keys import bucket_partition, shard_row
from function_app.ratelimit.lease.lease import BLOCK_BURST_SHARE, Row, block, shard_limit
from function_app.ratelimit.limits import Decision, Limit, ScopedLimit
from function_app.ratelimit.store import RowKey

EPSILON = 1e-9
SHARD_TRIES = 2  # shards a lease tries before it reports the key short
# Refill when a quarter of the goal is left: the top-up then moves ~3/4 of a lease in one write,
# and a quarter of lease_s of supply still covers the storage round trip.
REFILL_AT = 0.25
INF = float("inf")


# slots: a dataclass field's default is a class attribute, and CPython 3.13 does not specialise
# an instance attribute that shadows one (nor a dict past 30 names): without slots each of the
# fast path's reads and writes took the generic look-up (docs/perf/pass14-limit.md).
@dataclass(eq=False, slots=True)
class KeyState:
    """Mutable per-key state; identity-hashed so it can key dicts of per-request outcomes.

    tokens / expires_at: the leased pool (spendable only before expires_at).
    retry_at / retry_cost: the row could not pay retry_cost (0: a background top-up) until
    retry_at; a local negative cache that spares storage calls while the limit is saturated.
    row_tokens / row_seen: tokens the row had when last seen, for `remaining` estimates; set
    together by `saw_row`.
    full_from: from this time on the row's part of `remaining` alone reaches burst, so the
    estimate is burst (lease/fast.py); inf until found, reset when the row is seen again or the
    limit changes.
    cache: per shard, the row and ETag this instance last wrote, to lease without a read.
    conflict_at: per shard, when a write last hit a 412 (then read before writing for a while).
    written_at: per shard, when this instance last wrote the cached row.
    rewritten: shards whose row other instances wrote while this one paused (a 412, or a read
    after a pause that found another ETag): after the next pause, read before writing.
    fallback: the local safe-capacity bucket used while storage is unavailable.
    fetch / waiting: the one lease in flight for this key, and the cost of requests awaiting it;
    waiters: each of those costs (the smallest is what a partial grant must pay, lease.take).
    deciding: requests with this key among their scopes that await a lease (of any scope):
    maintenance leaves the pool alone meanwhile (Limiter._fill_holding).
    cap: the fair-share cap the row applied at the last lease (set by `capped`).
    quiet_demand / quiet_cost / quiet_tokens: while the observed demand is at most
    quiet_demand and requests cost quiet_cost, no top-up is due as long as the pool holds
    quiet_tokens (lease/fast.py); cleared when the cap or the limit changes.
    lease_goal: the demand target of the latest lease (what the first lease after a pause
    asks for: Limiter._lease_target).
    admitted / admitted_left: the fast path's last Decision for this key and the `left` it was
    made for (ratelimit/admitted.py); update_limit clears it.
    reserved: its costs are reservations settled later (ScopedLimit.reserved): fair shares
    only, never blocks (see lease.py).
    """

    scope: str
    key: str
    limit: Limit
    shards: int
    exact: bool
    partition: str
    tokens: float = 0.0
    expires_at: float = 0.0
    retry_at: float = 0.0
    retry_cost: float = 0.0
    row_tokens: float = 0.0
    row_seen: float = 0.0
    last_used: float = 0.0
    last_cost: float = 1.0
    last_shard: int = 0
    waiting: float = 0.0
    deciding: int = 0
    cap: float = float("inf")
    reserved: bool = False  # its costs are reservations settled later (token limits): no blocks
    demand_amount: float = 0.0
    lease_goal: float = 0.0
    demand_ts: float = 0.0
    block_cap: float = 0.0
    admitted: Decision | None = None
    admitted_left: float = 0.0
    full_from: float = INF
    quiet_demand: float = -1.0
    quiet_cost: float = 0.0
    quiet_tokens: float = 0.0
    fetch: asyncio.Task | None = None
    waiters: list[float] = field(default_factory=list)
    cache: dict[int, tuple[Row, str]] = field(default_factory=dict)
    conflict_at: dict[int, float] = field(default_factory=dict)
    written_at: dict[int, float] = field(default_factory=dict)
    rewritten: set[int] = field(default_factory=set)
    fallback: BucketState | None = None
    # (limit, shards, one shard's limit): made once per limit, not on every request's reads.
    _shard: tuple[Limit, int, Limit] | None = field(default=None, init=False, repr=False)

    @classmethod
    def create(cls, scoped: ScopedLimit, exact_below_rps: float, now: float) -> KeyState:
        shards = max(1, scoped.shards)
        exact = shard_limit(scoped.limit, shards).rate <= exact_below_rps
        partition = bucket_partition(scoped.scope, scoped.key)
        made = cls(scoped.scope, scoped.key, scoped.limit, shards, exact, partition,
                   last_used=now, reserved=scoped.reserved)
        made.block_cap = made.shard_limit.burst * BLOCK_BURST_SHARE
        return made

    def update_limit(self, scoped: ScopedLimit, exact_below_rps: float) -> None:
        """Follow a changed limit (overrides refresh); the pool stays, new caps apply later."""
        if scoped.limit is self.limit and scoped.shards == self.shards:
            return
        if scoped.limit != self.limit or max(1, scoped.shards) != self.shards:
            self.limit, self.shards = scoped.limit, max(1, scoped.shards)
            self.exact = self.shard_limit.rate <= exact_below_rps
            self.block_cap = self.shard_limit.burst * BLOCK_BURST_SHARE
            self.admitted, self.full_from, self.quiet_demand = None, INF, -1.0

    @property
    def shard_limit(self) -> Limit:
        """One shard row's limit (lease.shard_limit), kept until `limit` or `shards` changes."""
        made = self._shard
        if made is None or made[0] is not self.limit or made[1] != self.shards:
            made = self._shard = (self.limit, self.shards, shard_limit(self.limit, self.shards))
        return made[2]

    def row_key(self, shard: int) -> RowKey:
        """Shard 0 in the key's partition, shard n in a partition of its own ("~n" appended;
        '~' never occurs in an encoded key), so writers spread over shards never share a
        partition's throughput."""
        partition = self.partition if shard == 0 else f"{self.partition}~{shard}"
        return RowKey(partition, shard_row(shard))

    def shard_order(self, rng: random.Random) -> list[int]:
        """At most SHARD_TRIES shards to lease from, starting at a random one.

        Random per lease, not a shard per instance: arrivals are uneven over instances, and a
        fixed choice left hot instances' shards dry while others stayed full (and made a short
        instance read every shard in turn).
        """
        first = rng.randrange(self.shards)
        return [(first + i) % self.shards for i in range(min(self.shards, SHARD_TRIES))]

    def capped(self, cap: float) -> None:
        """The row applied fair-share cap `cap` to this instance's pool."""
        self.cap, self.quiet_demand = cap, -1.0

    def saw_row(self, row_tokens: float, now: float) -> None:
        """The row held `row_tokens` (one shard's) at `now`: the view `remaining` starts from."""
        self.row_tokens, self.row_seen, self.full_from = row_tokens, now, INF

    def pool(self, now: float) -> float:
        """Spendable leased tokens."""
        return self.tokens if now < self.expires_at else 0.0

    def join(self, cost: float) -> None:
        """A request of `cost` starts waiting for this key's lease."""
        self.waiting += cost
        self.waiters.append(cost)

    def leave(self, cost: float) -> None:
        self.waiting -= cost
        self.waiters.remove(cost)

    def least_waiting(self, cost: float) -> float:
        """The smallest cost among the waiting requests (`cost` when none waits)."""
        return min(self.waiters, default=cost)

    def spend(self, cost: float) -> None:
        self.tokens = max(0.0, self.tokens - cost)

    @property
    def demand(self) -> demand_.Demand:
        """The observed demand as a Demand (for readers; the state is two numbers)."""
        return demand_.Demand(self.demand_amount, self.demand_ts)

    def observe(self, cost: float, now: float, tau_s: float) -> None:
        """demand.observe, in place (lease/fast.py inlines the same arithmetic)."""
        amount, elapsed = self.demand_amount, now - self.demand_ts
        if elapsed > 0:
            amount = amount * math.exp(-elapsed / tau_s)
        self.demand_amount = amount + cost
        if now > self.demand_ts:
            self.demand_ts = now
        self.last_used, self.last_cost = now, cost

    def target(self, now: float, lease_s: float, tau_s: float, hold_s: float = 0.0) -> float:
        """Tokens to aim for: the observed rate over two lease periods, at least one request,
        and what that rate spends within `hold_s` up to a block (lease.block).

        Two periods because the pool is topped up when a quarter is left, so one write moves
        about one and a half periods of demand; the block keeps a write's size from shrinking
        as instances multiply. The cap (lease.fair_cap) still bounds what is held.
        """
        if self.exact:
            return self.last_cost
        rate = demand_.rate(self.demand, now, tau_s)
        # What this rate spends within hold_s, up to a block: spent, not forfeited, and as
        # large a write as the cap allows whatever the number of instances.
        blk = 0.0 if self.reserved else block(self.shard_limit, self.last_cost)
        spendable = min(blk, rate * hold_s)
        return max(self.last_cost, rate * lease_s * 2, spendable)

    def needs_refill(self, now: float, lease_s: float, tau_s: float, hold_s: float = 0.0) -> bool:
        """The pool can pay less than one more request plus REFILL_AT of the rest of its goal:
        top it up in the background (before a request has to wait for a lease)."""
        goal = min(self.target(now, lease_s, tau_s, hold_s), self.cap)
        unit = min(self.last_cost, goal)
        return self.pool(now) < unit + (goal - unit) * REFILL_AT

    def known_short(self, cost: float, now: float) -> bool:
        """The row is known not to pay `cost` yet: deny without asking storage.

        A smaller request than the one refused is let through when the pool plus the row, as
        last seen plus its refill since, could pay it.
        """
        if now >= self.retry_at:
            return False
        if cost >= self.retry_cost:
            return True
        seen = self.row_tokens + max(0.0, now - self.row_seen) * self.shard_limit.rate
        return cost - self.pool(now) > seen

    def remaining(self, now: float) -> float:
        """Estimated tokens left for this key across instances (pool + row as last seen)."""
        limit = self.limit
        row = self.row_tokens * self.shards + max(0.0, now - self.row_seen) * limit.rate
        return max(0.0, min(limit.burst, self.pool(now) + row))
