"""The aggregator's budget step in tally mode: it leases for the fleet (docs/ratelimit-tally.md,
"Budgets").

For period p, per budget with demand or unused pots in the rows of p: ONE conditional write on
the budget's lease row (the row lease mode and the exact path use: lease/lease.py, shard 0 of
lease/keys.py's partition) adds back the unused remainders the rows report and takes
min(tokens in the row, HEADROOM * (D + D')), D the demand summed over the readers of this
summary, D' over the readers whose row is of the period before (`_aside`). The summary lists
G = what was taken / c and D, each instance taking G * e_i / D (tally/pots.py), where c is
the sum of e_i / D over the members that take a pot (`claimed`): the pots hold what was
taken. The row records p (`pot`): a second aggregator of p (after a takeover) finds it and
applies nothing there, so nothing is granted or credited twice. A grant never delivered
(the summary lost, an instance gone) is tokens lost: an undershoot, never an overshoot.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable

from function_app.core.store_errors import StoreConflict, StoreError
from function_app.ratelimit.bucket import BucketState, refill
from function_app.ratelimit.counters import Counters
from function_app.ratelimit.guarded import GuardedStore
from function_app.ratelimit.lease import lease
from function_app.ratelimit.lease.keys import shard_row
from function_app.ratelimit.limits import Limit
from function_app.ratelimit.store import RowKey
from function_app.ratelimit.tally.pots import HEADROOM, pot_share
from function_app.ratelimit.tally.tally import CHUNK, MAX_ROW_KEYS, InstanceRow, View, fitting

TRIES = 3  # conditional writes per budget row before giving up for this period (no pot)
WIDEST = 1e12  # an entry's figures, for fitting the summary before anything is granted

Grants = dict[str, tuple[float, float, float, int]]  # (G, D, tokens the row kept, holders)


def _floor4(value: float) -> float:
    return math.floor(value * 1e4) / 1e4


def _ceil4(value: float) -> float:
    return math.ceil(value * 1e4) / 1e4


def _newest(rows: Iterable[InstanceRow]) -> dict[str, InstanceRow]:
    newest: dict[str, InstanceRow] = {}
    for row in rows:
        if row.member not in newest or row.period > newest[row.member].period:
            newest[row.member] = row
    return newest


def claimed(newest: Iterable[InstanceRow], view: View, part: str, total: float,
            holders: int) -> float:
    """The part of a grant of `part` listed as (G, `total`, _, `holders`) in `view` that the
    pots will hold: the sum of pots.pot_share over the members that take one (their newest
    row, one a member in `newest`, is of view.period and says they read it). At most one;
    less when members that take no pot (not reading, or counted by a row of another period)
    have traffic, since e_i includes w_i · D. Taking G whole off the row lost that part of
    every grant: tokens no pot held."""
    if total <= 0 or holders <= 0:
        return 0.0  # nothing to grant: no demand summed (only remainders credited)
    out = 0.0
    for row in newest:
        if row.period == view.period and row.reads and row.member in view.members:
            own = row.budgets[part][0] if part in row.budgets else 0.0
            out += pot_share(view, row.traffic, own, total, holders)
    return min(1.0, out)


def _aside(newest: Iterable[InstanceRow], done: int) -> dict[str, float]:
    """Per budget, the demand of the readers whose newest row (one a member in `newest`) is
    of the period before: a light instance writes (and reads) every other period
    (sync.TallySync._stands_in), so the pots of those that read this summary must last until
    their next one."""
    out: dict[str, float] = {}
    for row in newest:
        if row.period == done - 1 and row.reads:
            for part, (d, _, _) in row.budgets.items():
                out[part] = out.get(part, 0.0) + d
    return out


def summed(rows: Iterable[InstanceRow], done: int, members: frozenset[str]
           ) -> tuple[dict[str, list[float]], frozenset[str]]:
    """Per budget [D, unused, burst, holders] over the rows of period `done` (each instance's
    newest row, as tally.aggregate counts it), and the members whose budget demand was not
    summed: their counted row is of another period (a clock ahead or behind), or they will
    not read this summary (an instance deciding few requests reads every other one: a pot
    granted to it would be lost). They take no pot; their unused remainders are credited."""
    sums: dict[str, list[float]] = {}
    included = set()
    for row in _newest(rows).values():
        if row.period != done:
            continue
        if row.reads:
            included.add(row.member)
        for part, (d, unused, burst) in row.budgets.items():
            d = d if row.reads else 0.0
            entry = sums.setdefault(part, [0.0, 0.0, burst, 0])
            entry[0] += d
            entry[1] += unused
            entry[2] = min(entry[2], burst)
            entry[3] += d > 0
    return sums, frozenset(members - included)


async def grant(store: GuardedStore, rows: Iterable[InstanceRow], view: View, now: float,
                counters: Counters) -> tuple[Grants, frozenset[str]]:
    """Credit and grant on every budget's row for `view`'s period: what to list (every budget
    applied, granted or not: instances learn what its row kept), and the members left out.
    Budgets the summary could not list are credited, not granted (counted as
    budget_pots_cut); a row that cannot be written this period gets no pot."""
    newest, done = list(_newest(rows).values()), view.period  # once, not once per budget
    sums, excluded = summed(newest, done, view.members)
    if not sums:
        return {}, excluded
    ranked = sorted(sums, key=lambda part: -sums[part][0])
    wide = [(part, [WIDEST, WIDEST, WIDEST, WIDEST]) for part in ranked]
    room = fitting(wide, CHUNK, MAX_ROW_KEYS)
    if len(json.dumps(sorted(excluded), separators=(",", ":"))) > CHUNK:
        room = 0  # the members left out do not fit: a pot may not be taken safely
    if room < len(ranked):
        counters.incr("budget_pots_cut", len(ranked) - room)
    listed = set(ranked[:room])
    claims = {part: claimed(newest, view, part, _ceil4(sums[part][0]), int(sums[part][3]))
              for part in listed}
    aside = _aside(newest, done)
    results = await asyncio.gather(*(
        _apply(store, part, sums[part], done, now, counters, claims.get(part, 0.0),
               aside.get(part, 0.0))
        for part in ranked))
    grants = {part: got for part, got in zip(ranked, results, strict=True)
              if got is not None and part in listed}
    return grants, excluded


async def _apply(store: GuardedStore, part: str, summed_: list[float], done: int, now: float,
                 counters: Counters, claim: float, aside: float = 0.0
                 ) -> tuple[float, float, float, int] | None:
    """One budget row: (G, D, tokens kept, holders), or None (nothing applied: applied
    already, or the row could not be written). `claim` (0 when not listed): the part of G
    the pots will hold (`claimed`); the row gives G * claim = min(tokens, HEADROOM * (D +
    `aside`)), `aside` the demand of readers whose row is of the period before."""
    demand, unused, burst, holders = summed_
    limit = Limit(0.0, burst)
    key = RowKey(part, shard_row(0))
    try:
        for _ in range(TRIES):
            found = await store.read(key)
            try:
                row = lease.row_from_fields(found.fields) if found is not None else None
            except ValueError:
                row = None  # lease mode overwrites a corrupt row with a fresh one too
            if row is not None and row.pot >= done:
                return None  # applied already (another aggregator of this period)
            current = row if row is not None else lease.fresh_row(limit, now)
            bucket = refill(BucketState(current.tokens, current.ts), limit, now)
            tokens = min(burst, bucket.tokens + unused)
            granted, taken = _granted(tokens, demand + aside, claim)
            if granted <= 0 and unused <= 0:  # nothing to apply: no write, nothing twice
                return 0.0, _ceil4(demand), _floor4(tokens), int(holders)
            live = {who: until for who, until in current.holders.items() if until > now}
            new = lease.Row(tokens - taken, bucket.ts, limit.rate, burst, live, done)
            try:
                await store.write(key, lease.row_to_fields(new),
                                  found.etag if found is not None else None)
            except StoreConflict:
                continue  # an instance leased meanwhile: read again
            counters.incr("budget_unused_credited", round(unused))
            if granted > 0:
                counters.incr("budget_pots_granted")
            return granted, _ceil4(demand), _floor4(tokens - taken), int(holders)
    except StoreError:
        pass  # counted by GuardedStore; no pot this period (the exact path still serves)
    counters.incr("budget_pot_failures")
    return None


def _granted(tokens: float, demand: float, claim: float) -> tuple[float, float]:
    """(G listed, tokens taken off the row): the pots of G hold G * claim (`claimed`), so G
    is what the row gives divided by the claim, and only that is taken."""
    target = min(tokens, HEADROOM * demand)
    if claim <= 0 or target <= 0:
        return 0.0, 0.0
    granted = _floor4(target / claim)
    return granted, min(tokens, _ceil4(granted * claim))
