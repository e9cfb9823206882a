"""Budget pots at one instance in tally mode (docs/ratelimit-tally.md, "Budgets"). Pure: no
I/O; the caller passes the time.

A budget (a rate-0 limit) is named by its lease partition (lease/keys.py). Per period this
instance counts the cost asked of each budget (d_i), and its row carries d_i together with
the unused remainder of every pot it dropped since its last row (each remainder reported
once). The aggregator grants G per budget from the budget's lease row and lists (G, D) in the
summary (tally/potgrants.py); on adopting that view this instance takes G * e_i / D, e_i
its expected demand as tally.share has it (its own d_i, published for that period as encoded,
trusted as far as a holder's counts are many; else its part of the traffic, w_i * D), so the
pots of one grant sum to at most G (to what the aggregator took off the row: potgrants). A
pot is spent without any storage call; on a newer view it keeps what this instance asked of
its budget in that view's period and the rest is reported (`_trim`); a pot not asked of, or
whose view is POT_PERIODS old by this clock, is dropped and reported. A cost above what
the summary showed its budget's row kept is refused here without storage (`short`), and a
budget shown empty is no demand, until a view shows it again (or EMPTY_PERIODS on): near
the end of a budget every instance asking the row each budget once was 20,000 reads at
1,000 instances and 20 budgets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from function_app.ratelimit.counters import Counters
from function_app.ratelimit.tally.tally import (
    CHUNK,
    DECAY,
    MAX_ROW_KEYS,
    TRUST_AT,
    View,
    fitting,
    weight,
)

# A pot whose view is older than this many periods is dropped. Three, not two: an instance
# deciding few requests reads the summary every other period (sync.LIGHT_TRAFFIC), and its
# pots must last until the next one it reads.
POT_PERIODS = 3
LEAST_DEMAND = 1.0  # a decayed d_i below this is not published (about one request)
KEEP = 1.0  # on a newer view a pot keeps this many periods of the instance's demand
HEADROOM = 2.0  # a grant is at most this many periods of the demand summed (potgrants)
EMPTY_PERIODS = 10  # an empty budget is asked of its row again after this long at most


def pot_share(view: View, traffic: float, own: float, total: float, holders: int) -> float:
    """e_i / D of one member: its part of a grant listed in `view` with demand `total` over
    `holders`, from its published request count `traffic` and budget demand `own` for
    view.period. The aggregator sums it over the members that take pots (potgrants.claimed),
    so it must stay the one formula both use."""
    w = weight(view, max(1, view.instances), traffic)
    per_holder = total / holders
    trust = per_holder / (per_holder + TRUST_AT)
    return min(1.0, trust * own / total + (1 - trust) * w)


@dataclass
class Pot:
    tokens: float
    period: int  # of the view it was granted in
    share: float  # d_i / D: what this instance's demand was of the fleet's
    left: float  # tokens the row kept after the grant (for `remaining`)


class Pots:
    """This instance's budget demand, published figures, pots and unreported remainders."""

    def __init__(self, period_s: float, counters: Counters) -> None:
        self.period_s, self._counters = period_s, counters
        self._raw: dict[int, dict[str, float]] = {}  # period -> partition -> cost asked
        self._bursts: dict[str, float] = {}
        self._entries: dict[int, dict[str, list[float]]] = {}  # the rows' budget parts
        self._published: dict[int, dict[str, float]] = {}  # period -> d_i as encoded
        self._unused: dict[str, float] = {}  # remainders dropped, not in a row yet
        self.pots: dict[str, Pot] = {}
        self.adopted = -1  # the period of the last view whose grants were taken
        self.known: dict[str, tuple[float, int]] = {}  # partition -> (row kept, view period)
        self._grants: dict[str, float] = {}  # partition -> what each later grant may take
        self._reads: dict[int, bool] = {}  # period -> its row said it reads that summary

    def period(self, now: float) -> int:
        return math.floor(now / self.period_s)

    def record(self, part: str, cost: float, burst: float, now: float) -> None:
        """Cost asked of a budget (admitted or refused; never more than it holds, and not of
        a budget known empty: no grant can come of it, and rows with it cost storage)."""
        if 0 < cost <= burst and not self.short(part, LEAST_DEMAND):
            raw = self._raw.setdefault(self.period(now), {})
            raw[part] = raw.get(part, 0.0) + cost
            self._bursts[part] = burst

    def close(self, done: int) -> dict[str, list[float]]:
        """The budget part of this instance's row for `done`: partition -> [d_i, unused,
        burst], computed once (a retried row carries the same figures). d_i is what was asked,
        or half the period before's if more; the unused remainders dropped since the last row
        go in once. What does not fit BUDGET_CHUNKS waits: its remainder for the next row,
        its demand gets no pot."""
        if done in self._entries:
            return self._entries[done]
        raw = self._raw.pop(done, {})
        before = self._published.get(done - 1, {})
        demand = {part: round(cost, 4) for part, cost in raw.items()}
        for part, d in before.items():
            if d * DECAY >= max(LEAST_DEMAND, demand.get(part, 0.0)):
                demand[part] = round(d * DECAY, 4)
        ranked = sorted(set(demand) | set(self._unused),
                        key=lambda part: (-demand.get(part, 0.0), part))
        entries = [(part, [demand.get(part, 0.0), round(self._unused.get(part, 0.0), 4),
                           self._bursts.get(part, 0.0)]) for part in ranked]
        kept = dict(entries[:fitting(entries, CHUNK, MAX_ROW_KEYS)])
        for part in kept:
            self._unused.pop(part, None)
        self._published[done] = {part: e[0] for part, e in kept.items() if e[0] > 0}
        self._entries[done] = kept
        for store in (self._entries, self._published):
            for old in [p for p in store if p < done - 4]:
                del store[old]
        self._raw = {p: r for p, r in self._raw.items() if p > done}
        live = set(self._unused).union(*self._raw.values(), *self._published.values())
        self._bursts = {part: b for part, b in self._bursts.items() if part in live}
        return kept

    def reading(self, done: int, reads: bool) -> bool:
        """Whether the row of `done` says this instance reads its summary: the first answer
        (a retried row says the same)."""
        self._reads = {p: r for p, r in self._reads.items() if p >= done - 4}
        return self._reads.setdefault(done, reads)

    def active(self, done: int) -> bool:
        """Budget demand published for `done` or the period before: a summary may grant."""
        return any(self._published.get(p) for p in (done, done - 1))

    def adopt(self, view: View | None, me: str, now: float, traffic: float) -> None:
        """Drop pots too old; on a view newer than the last one adopted, drop every pot (a
        newer view replaces them), learn which budgets are empty, and take this instance's
        part of each grant listed, when its row of that period was summed (a member, not
        left out of the budgets). `traffic`: the request count its row of view.period
        carried (0 when it wrote none)."""
        period = self.period(now)
        for part in [p for p, pot in self.pots.items() if period - pot.period > POT_PERIODS]:
            self._drop(part)
        self.known = {p: e for p, e in self.known.items() if period - e[1] <= EMPTY_PERIODS}
        if view is None or view.period <= self.adopted:
            return
        self.adopted = view.period
        self._trim(self._published.get(view.period, {}))
        for part, (_, total, left, _) in view.pots.items():
            self.known[part] = (left, view.period)
            self._grants[part] = HEADROOM * total
        self._grants = {p: g for p, g in self._grants.items() if p in self.known}
        if me in view.members and me not in view.excluded and self._reads.get(view.period):
            self._take(view, me, traffic)

    def _take(self, view: View, me: str, traffic: float) -> None:
        """This instance's pot of each grant: G * e_i / D (see the module); they sum to at
        most G over the members whose rows were summed."""
        mine = self._published.get(view.period, {})
        for part, (granted, total, left, holders) in view.pots.items():
            if granted <= 0 or total <= 0 or holders <= 0:
                continue
            share = pot_share(view, traffic, mine.get(part, 0.0), total, holders)
            if share > 0:
                kept = self.pots[part].tokens if part in self.pots else 0.0
                self.pots[part] = Pot(granted * share * (1 - 1e-9) + kept, view.period, share,
                                      left)
                self._counters.incr("budget_pots")

    def _trim(self, demand: dict[str, float]) -> None:
        """On a newer view: keep of each pot what this instance asked of its budget in the
        view's period (`demand`: d_i as published), report the rest as unused, and drop a pot
        it did not ask of. Dropping every pot on each view sent tokens that the instance
        itself was about to spend around the rows and back, two periods of delay each, while
        its requests were refused (the budgets scenario spent 0.68 of its budgets)."""
        for part in list(self.pots):
            pot, keep = self.pots[part], KEEP * demand.get(part, 0.0)
            if pot.tokens > keep and keep > 0:
                self._unused[part] = self._unused.get(part, 0.0) + pot.tokens - keep
                pot.tokens = keep
                self._counters.incr("budget_pots_dropped")
            elif keep <= 0:
                self._drop(part)

    def give(self, part: str, tokens: float, burst: float) -> None:
        """Tokens taken from a budget's row and not spent (an idle leased pool): reported
        unused in the next row, like a pot's remainder."""
        self._unused[part] = self._unused.get(part, 0.0) + tokens
        self._bursts.setdefault(part, burst)

    def short(self, part: str, cost: float) -> bool:
        """The last summary listing this budget showed its row with less than `cost` left."""
        known = self.known.get(part)
        return known is not None and known[0] < cost

    def drained(self, part: str, cost: float, now: float) -> bool:
        """`short`, or the row is likely drained below `cost` by the grants made since the
        summary that showed it: each takes about HEADROOM * D (D as that summary listed), and
        this instance, reading every other summary, may hold one two or three periods old.
        Only to spare a futile read of the row (the exact path found it short in nearly
        every one of about 500 tries in the budgets scenario's window); never for demand."""
        known = self.known.get(part)
        if known is None:
            return False
        since = max(0, self.period(now) - known[1] - 1)
        return known[0] - since * self._grants.get(part, 0.0) < cost

    def _drop(self, part: str) -> None:
        pot = self.pots.pop(part)
        if pot.tokens > 0:
            self._unused[part] = self._unused.get(part, 0.0) + pot.tokens
            self._counters.incr("budget_pots_dropped")

    def pay(self, parts: list[str], cost: float) -> bool:
        """Spend `cost` from the pot of every budget in `parts`, or from none (False: one has
        no pot, or too little)."""
        pots = [self.pots.get(part) for part in parts]
        if any(pot is None or pot.tokens < cost for pot in pots):
            return False
        for pot in pots:
            assert pot is not None
            pot.tokens -= cost
        self._counters.incr("budget_pot_paid")
        return True

    def settle(self, part: str, delta: float) -> bool:
        """Settle `delta` (a refund when < 0) in this budget's pot; False when it has none."""
        pot = self.pots.get(part)
        if pot is None:
            return False
        pot.tokens -= delta
        return True

    def remaining(self, part: str, burst: float) -> float:
        """The budget left across the fleet, estimated as if every instance spent its pot as
        this one did: what the row kept plus this pot scaled to the whole grant."""
        pot = self.pots.get(part)
        if pot is None or pot.share <= 0:
            return 0.0
        return max(0.0, min(burst, pot.left + pot.tokens / pot.share))
