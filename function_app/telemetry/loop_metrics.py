"""A counter and a histogram for the event loop's thread, written by prometheus-client at scrape.

prometheus-client's `inc` and `observe` check the metric's type and take a lock on each call
(four to five calls each, ~18 a request for the four metrics every request updates). The
gateway updates these from its event loop only, and a scrape reads them there too, so a plain
list cell is enough: one call per update. At scrape, `collect` gives prometheus-client the same
metric families its own Counter and Histogram give (tests/unit/test_loop_metrics.py compares
the exposition text), so /metrics is unchanged.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class _CounterChild:
    __slots__ = ("_cell",)

    def __init__(self, cell: list[float]) -> None:
        self._cell = cell

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self._cell[0] += amount


class LoopCounter(Collector):
    """`name`_total by `labelnames`; `labels(*values)` gives a child with `inc`."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self._name, self._doc, self._labelnames = name, documentation, tuple(labelnames)
        self._cells: dict[tuple[str, ...], list[float]] = {}

    def labels(self, *values: str) -> _CounterChild:
        key = _key(values, self._labelnames)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = [0.0]
        return _CounterChild(cell)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._doc, labels=self._labelnames)
        for key, cell in list(self._cells.items()):
            family.add_metric(key, cell[0])
        yield family


class _HistogramChild:
    __slots__ = ("_bounds", "_counts")

    def __init__(self, bounds: tuple[float, ...], counts: list[float]) -> None:
        self._bounds, self._counts = bounds, counts

    def observe(self, amount: float) -> None:
        counts = self._counts
        counts[bisect_left(self._bounds, amount)] += 1  # the first bucket with bound >= amount
        counts[-1] += amount  # the last cell is the sum


class LoopHistogram(Collector):
    """`name`_bucket/_count/_sum by `labelnames`, with `buckets` (and +Inf) as upper bounds."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float]) -> None:
        self._name, self._doc, self._labelnames = name, documentation, tuple(labelnames)
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if not bounds or bounds[-1] != float("inf"):
            bounds.append(float("inf"))
        self._bounds = tuple(bounds)
        self._les = [floatToGoString(b) for b in bounds]
        self._series: dict[tuple[str, ...], list[float]] = {}

    def labels(self, *values: str) -> _HistogramChild:
        key = _key(values, self._labelnames)
        counts = self._series.get(key)
        if counts is None:
            counts = self._series[key] = [0.0] * (len(self._bounds) + 1)  # buckets, then sum
        return _HistogramChild(self._bounds, counts)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._doc, labels=self._labelnames)
        for key, counts in list(self._series.items()):
            running, buckets = 0.0, []
            for le, count in zip(self._les, counts, strict=False):
                running += count
                buckets.append((le, running))
            family.add_metric(key, buckets, counts[-1])
        yield family


class HistogramCount(Collector):
    """`name`_total by `histogram`'s labels: each series' number of observations (the sum of
    its bucket counts), for a counter incremented exactly when the histogram observes, under the
    same labels (the requests counter and the request duration). Its family is the one a
    LoopCounter kept beside the histogram gives, series in the same order, without a cell to
    update per event: integer counts in floats sum exactly."""

    def __init__(self, name: str, documentation: str, histogram: LoopHistogram) -> None:
        self._name, self._doc, self._histogram = name, documentation, histogram

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._doc, labels=self._histogram._labelnames)
        for key, counts in list(self._histogram._series.items()):
            family.add_metric(key, sum(counts[:-1], 0.0))  # the last cell is the sum
        yield family


class CountedDuration:
    """One label set's counter cell and histogram series updated by one call: what the request
    and attempt metrics do per event (`count.inc(); duration.observe(seconds)`), a call less
    each and no pair to unpack. The cells are the collectors' own, so /metrics is unchanged."""

    __slots__ = ("_bounds", "_cell", "_counts")

    def __init__(self, count: _CounterChild, duration: _HistogramChild) -> None:
        self._cell = count._cell
        self._bounds, self._counts = duration._bounds, duration._counts

    def observe(self, seconds: float) -> None:
        self._cell[0] += 1
        counts = self._counts
        counts[bisect_left(self._bounds, seconds)] += 1
        counts[-1] += seconds


def _key(values: Sequence[str], names: tuple[str, ...]) -> tuple[str, ...]:
    if len(values) != len(names):
        raise ValueError("Incorrect label count")
    return tuple(str(value) for value in values)
