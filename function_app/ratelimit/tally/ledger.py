"""This instance's demand ledger in tally mode: what it counted per period (cost asked per key,
requests decided), what it published for each period (smoothed: tally.published), and which
periods storage accepted. Pure: no I/O; the caller passes the time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from function_app.ratelimit.tally import tally


@dataclass
class Counted:
    """One period at this instance: demand per key (cost asked) and requests decided."""

    demand: dict[str, float] = field(default_factory=dict)
    traffic: float = 0.0


NOTHING = Counted()  # read-only: a period with nothing counted


class Ledger:
    """Counts of the current period, published figures of the last few (see the module)."""

    def __init__(self, period_s: float, me: str = "") -> None:
        self.period_s, self._me = period_s, me  # me: this instance's member id
        self._raw: dict[int, Counted] = {}  # per period, as counted
        self._published: dict[int, Counted] = {}  # per period, as published (smoothed)
        self._rates: dict[str, float] = {}
        self.closed = -1  # the last period whose figures were computed (`close`)
        self._written: set[int] = set()  # recent periods whose row storage accepted

    def period(self, now: float) -> int:
        return math.floor(now / self.period_s)

    @property
    def rates(self) -> dict[str, float]:
        """The rate of every key this instance still counts (its row carries them)."""
        return self._rates

    def record(self, kid: str, cost: float, rate: float, now: float) -> None:
        """Demand seen on a key (admitted, or asked of the scope that denied it)."""
        raw = self._counting(now).demand
        raw[kid] = max(0.0, raw.get(kid, 0.0) + cost)
        self._rates[kid] = rate

    def request(self, now: float) -> None:
        """One request decided here (any keys): the instance's traffic, which weighs its part
        of the limits' unused shares (tally.weight)."""
        self._counting(now).traffic += 1

    def admitted(self, keys: list[tuple[str, float]], cost: float, period: int) -> None:
        """`request` and `record` (cost, for each (kid, rate) of `keys`) of one admitted
        request in `period` (`self.period(now)`), with one look-up (tally/fast.py)."""
        counted = self._raw.get(period)
        if counted is None:
            counted = self._raw[period] = Counted()
        counted.traffic += 1
        raw, rates = counted.demand, self._rates
        for kid, rate in keys:
            value = raw.get(kid, 0.0) + cost
            raw[kid] = value if value > 0.0 else 0.0
            rates[kid] = rate

    def _counting(self, now: float) -> Counted:
        """The current period's counts (made on its first request, not on every one)."""
        period = self.period(now)
        counted = self._raw.get(period)
        if counted is None:
            counted = self._raw[period] = Counted()
        return counted

    def close(self, done: int) -> Counted:
        """This instance's published figures for `done`, computed once: demand and traffic
        each as counted, or half the period before's if more."""
        if done > self.closed:
            self.closed = done
            floors = {kid: 0.01 * rate * self.period_s for kid, rate in self._rates.items()}
            raw, before = self._raw.pop(done, NOTHING), self._published.get(done - 1, NOTHING)
            self._published[done] = Counted(
                tally.published(raw.demand, before.demand, floors),
                max(raw.traffic, before.traffic * tally.DECAY))
            self._raw = {p: c for p, c in self._raw.items() if p > done}
            self._published = {p: c for p, c in self._published.items() if p >= done - 4}
            live = set(self._published[done].demand).union(
                *(c.demand for c in self._raw.values()))
            self._rates = {kid: rate for kid, rate in self._rates.items() if kid in live}
        return self._published.get(done, NOTHING)

    def written(self, done: int) -> None:
        """Storage accepted this instance's row for `done`."""
        self._written = {p for p in self._written if p >= done - 4} | {done}

    def has_written(self, done: int) -> bool:
        """Storage accepted this instance's row for period `done`."""
        return done in self._written

    def active(self, done: int) -> bool:
        """Published demand for `done` or the period before: worth reading the summary for."""
        return any(self._published.get(p, NOTHING).demand for p in (done, done - 1))

    def counted(self, view: tally.View | None) -> bool:
        """`view`'s N counts this instance (its row of the period before is in)."""
        return view is not None and view.period - 1 in self._written

    def own(self, kid: str, view: tally.View | None) -> float:
        """This instance's published demand on a key for `view`'s period."""
        return self._in_view(view).demand.get(kid, 0.0)

    def traffic_of(self, period: int) -> float:
        """The request count this instance published for `period` exactly (0: none)."""
        return self._published.get(period, NOTHING).traffic

    def own_traffic(self, view: tally.View | None) -> float:
        """This instance's published request count for `view`'s period."""
        return self._in_view(view).traffic

    def summed(self, view: tally.View) -> int:
        """The period of this instance's row that `view` summed (the one before when that row
        stood in for a missing one: `view.behind`)."""
        return view.period - 1 if self._me in view.behind else view.period

    def _in_view(self, view: tally.View | None) -> Counted:
        """What the summary summed for this instance: its row of the view's period, or of the
        period before when that row stood in (`view.behind`: refused, late or read a period
        ago; tally.aggregate). Other figures than those summed would let shares exceed one."""
        if view is None:
            return NOTHING
        published, summed = self._published, self.summed(view)
        if summed < view.period:
            return published.get(summed, NOTHING)
        return published.get(view.period) or published.get(view.period - 1, NOTHING)
