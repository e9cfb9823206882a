"""Pure tally maths: limits shared by many instances for two storage operations per instance per
period, whatever the number of instances or keys (RATE_LIMIT_SYNC=tally; issue #10).

Each instance runs, per key, a local bucket for its share of the limit, computed from the
summary of everyone's counts (`share`, `local_limit`, `opening`); the aggregator sums the rows
into that summary (`aggregate`). The formulas, why they are what they are, and the proof that
one summary's shares never add up to more than the limit: docs/ratelimit-tally.md ("The
shares and the proof").
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from function_app.ratelimit.limits import Limit

TRUST_AT = 6.0  # requests per holder at which a key's own counts weigh half (tally.share)
PHI = 0.1  # keys below this utilisation are left out of the summary
PHI_CUT = 0.5  # at most this much of an unlisted key's share follows its own (unsummed) demand
MAX_HOT_KEYS = 10_000  # keys a summary lists at most (fewer when they do not fit its chunks)
ROOM_SIGMAS = 3.0  # room a bucket keeps for Poisson arrivals, in standard deviations
EVEN = 0.2  # of a key's unused share split evenly over instances; the rest by their traffic
DECAY = 0.5  # published demand falls at most by half per period
CHUNK = 30_000  # characters per string property (Table Storage: 64 KiB, UTF-16)
MAX_CHUNKS = 15  # a row stays under 1 MiB
MAX_ROW_KEYS = 11_000  # keys one instance row carries per period (fewer if they do not fit)
HOT_CHUNKS, MEMBER_CHUNKS = 10, 5  # the summary: 10,000 hot keys, 7,800 instances
# Budgets: one chunk in an instance row (demand and unused pots) and two in the summary
# (grants, and members left out of them): still under the entity's 1 MiB (UTF-16).
BUDGET_CHUNKS = 1
STALE_PERIODS = 4  # a view older than this many periods is no view: the failure mode decides


def key_id(scope: str, key: str) -> str:
    """A short fixed-size id for (scope, key): rows stay small whatever a client calls itself."""
    return hashlib.blake2b(f"{scope}:{key}".encode(), digest_size=8).hexdigest()


def member_id(instance: str) -> str:
    """An instance's row key: 64 bits (with 32, two of 1,000 instances shared a row about
    once in 10,000 fleets, and one of them never counted)."""
    return hashlib.blake2b(instance.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class View:
    """What the summary of period `period` says (docs/ratelimit-tally.md, the shares)."""

    period: int
    instances: int
    members: frozenset[str]
    hot: Mapping[str, tuple[float, int]]  # kid -> (D, instances with demand on it)
    phi: float = PHI
    traffic: float = 0.0  # requests the counted instances saw in the period, all keys
    behind: frozenset[str] = frozenset()  # members counted by their row of the period before
    # Budgets (tally/potgrants.py): lease partition -> (G granted, D summed, tokens the row
    # kept, holders), and the members whose budget demand of `period` was not in D (no pot).
    pots: Mapping[str, tuple[float, float, float, int]] = field(default_factory=dict)
    excluded: frozenset[str] = frozenset()


def share(view: View, me: str, kid: str, own: float, rate: float, period_s: float,
          expected: int = 1, traffic: float = 0.0, counted: bool = False) -> float:
    """This instance's fraction s_i of one key's limit under `view` (docs/ratelimit-tally.md).

    `own` / `traffic`: its published demand on the key and request count for view.period,
    used when the view counted that row (it is a member). `counted`: it published a row for
    the period before, so N counts it although its demand is not in the sums. Otherwise it is
    new to the view and takes 1 / max(N + 1, `expected`).
    """
    n = max(1, view.instances)
    if me not in view.members:
        if not counted:
            return 1.0 / max(view.instances + 1, expected)
        own, traffic = 0.0, 0.0
    elif n == 1:
        return 1.0
    capacity = rate * period_s
    if capacity <= 0:
        return 1.0 / n
    w = weight(view, n, traffic)
    listed = view.hot.get(kid)
    if listed is None:
        s = cold_share(view.phi, own / capacity, w)
    else:
        total, holders = listed
        # Counts of one or two per instance are noise: trust them in proportion to how many
        # requests each holder saw, and expect the rest where the traffic lands.
        per_holder = total / max(1, holders)
        trust = per_holder / (per_holder + TRUST_AT)
        expected_demand = trust * own + (1 - trust) * w * total
        if total <= capacity:
            s = expected_demand / capacity + (1 - total / capacity) * w
        else:
            s = expected_demand / total
    return min(1.0, max(0.0, s))


def cold_share(phi: float, own: float, w: float) -> float:
    """s_i of a key the summary does not list: its D is below phi * R, so its own demand
    (`own`, in units of R) sums to below phi over the fleet. When the list was cut, phi is the
    highest utilisation of a key left out and may exceed one (a flood of keys): own demand is
    then scaled by PHI_CUT / phi, so the sum stays below PHI_CUT + (1 - PHI_CUT) = 1 and every
    unlisted key, the global key included, keeps at least (1 - PHI_CUT) * w_i; never negative."""
    cut = min(phi, PHI_CUT)
    scale = cut / phi if phi > cut else 1.0
    return max(0.0, own) * scale + (1 - cut) * w


def weight(view: View, n: int, traffic: float) -> float:
    """w_i: where requests land next is best told by where they landed (the load balancer's
    weights): mostly in proportion to the requests the instance saw on all keys, partly
    evenly, for traffic that moves. Sums to 1 over the instances N counts."""
    if view.traffic <= 0:
        return 1.0 / n
    return (1 - EVEN) * traffic / view.traffic + EVEN / n


def local_limit(limit: Limit, s: float, unit: float, period_s: float = 0.0) -> Limit:
    """The bucket one instance runs for its share s of `limit`: its part of the burst, room for
    a period's arrivals to bunch up (ROOM_SIGMAS standard deviations of Poisson arrivals at its
    share of the rate, at most its part of a period's rate, none when alone: an instance alone
    is an exact bucket), and at least one request."""
    return Limit(limit.rate * s, max(unit, opening(limit, s, unit, period_s)), limit.shadow)


def opening(limit: Limit, s: float, unit: float, period_s: float) -> float:
    """The tokens a bucket for share s starts with: its part of the burst and its room, never
    the key's typical cost `unit` when that is more (local_limit's capacity may be `unit`, so
    that a large request can fit once refilled; starting there let ten instances each admit a
    190,000-token request against a 400,000 burst: cost above a share waits)."""
    expected = s * limit.rate * period_s  # cost arriving at this share in a period
    room = min(min(s, 1 - s) * limit.rate * period_s,
               ROOM_SIGMAS * math.sqrt(expected * max(unit, 0.0)))
    return s * limit.burst + room


def published(raw: Mapping[str, float], previous: Mapping[str, float],
              floors: Mapping[str, float] | None = None) -> dict[str, float]:
    """d_i for a period: what was asked in it, or half the previous figure if more. A decayed
    figure below its key's floor (1 % of rate * P: too small to matter to any share) is
    dropped, so an instance whose traffic stopped goes quiet within a few periods."""
    floors = floors or {}
    out = {kid: value for kid, value in raw.items() if value > 0}
    for kid, value in previous.items():
        decayed = value * DECAY
        if decayed > out.get(kid, 0.0) and decayed >= floors.get(kid, 1e-3):
            out[kid] = decayed
    return out


def fitting(entries: list[tuple[str, object]], chars: int, most: int) -> int:
    """How many leading `entries` a compact JSON object of them holds within `chars`
    characters (each entry measured as encoded: "key":value plus its comma), at most `most`."""
    used = 2  # the braces
    for count, (key, value) in enumerate(entries[:most]):
        used += len(json.dumps(key)) + len(json.dumps(value, separators=(",", ":"))) + 2
        if used > chars:
            return count
    return min(len(entries), most)


@dataclass(frozen=True)
class InstanceRow:
    member: str
    period: int
    at: float
    demand: Mapping[str, tuple[float, float]]  # kid -> (d_i, rate)
    traffic: float = 0.0
    # lease partition -> (d_i, unused remainder of pots dropped, burst): tally/pots.py
    budgets: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)
    reads: bool = False  # it will read this period's summary: its budget demand may be granted


def aggregate(rows: Iterable[InstanceRow], period: int, period_s: float) -> View:
    """The summary of `period`: every instance's newest row of the period before, the period
    or the one after is counted, with its figures; hot keys are those at or above phi of
    rate * P. A row of the period before (`behind`: a refused row, a clock running behind, a
    group partition read a period ago) stands in for the one missing; each such member takes
    its own figures from that row (ledger.Ledger), so that the shares still sum to one. It
    was counted in N only, with no demand: under 50 % ServerBusy a refused row cost an
    instance its share for a period unless it was written again (two operations per row).
    A row of the period after is from a clock running ahead. Every row counts at most once."""
    totals: dict[str, float] = {}
    holders: dict[str, int] = {}
    rate_of: dict[str, float] = {}
    members, behind, traffic = set(), set(), 0.0
    newest: dict[str, InstanceRow] = {}
    for row in rows:  # an instance that moved partition may have two rows: its newest counts
        if row.member not in newest or row.period > newest[row.member].period:
            newest[row.member] = row
    for row in newest.values():
        if row.period < period - 1 or row.period > period + 1:
            continue
        members.add(row.member)
        if row.period < period:
            behind.add(row.member)
        traffic += row.traffic
        for kid, (value, rate) in row.demand.items():
            totals[kid] = totals.get(kid, 0.0) + value
            holders[kid] = holders.get(kid, 0) + (value > 0)
            rate_of[kid] = min(rate, rate_of.get(kid, rate))
    # A rate-0 key (a budget) is no share of anything: decided exactly elsewhere, never
    # listed (its utilisation is infinite and would push every real key out).
    hot = {kid: (d, holders[kid]) for kid, d in totals.items()
           if rate_of[kid] > 0 and d >= PHI * rate_of[kid] * period_s}
    # Keys many instances hold first (the global key, a route's), then by utilisation: a
    # flood of fresh ids, each on one instance, outranked the global key and left it on a
    # cold share (honest traffic at 0.72 of exact at 1,000 instances). A key one instance
    # holds is shared well enough by its own demand there.
    ranked = sorted(hot, key=lambda kid: (-hot[kid][1],
                                          -_utilisation(hot[kid][0], rate_of[kid], period_s)))
    phi = PHI
    room = fitting([(kid, hot_entry(hot[kid])) for kid in ranked], CHUNK * HOT_CHUNKS,
                   MAX_HOT_KEYS)
    if len(ranked) > room:  # phi: the highest utilisation of any key left out
        phi = max(PHI, *(_utilisation(hot[kid][0], rate_of[kid], period_s)
                         for kid in ranked[room:]))
        ranked = ranked[:room]
    return View(period, len(members), frozenset(members), {kid: hot[kid] for kid in ranked},
                phi, traffic, frozenset(behind))


def _utilisation(total: float, rate: float, period_s: float) -> float:
    return total / (rate * period_s) if rate > 0 else float("inf")


def hot_entry(listed: tuple[float, int]) -> list[float | int]:
    return [round(listed[0], 4), listed[1]]
