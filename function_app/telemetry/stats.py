"""Gauges read at scrape time from the gateway's stats sources, whatever they hold.

A stats source is `() -> dict` (GET /_gateway/stats shows the same). Nested keys are joined with
dots: numbers become `gateway_stats{source, key}`, booleans 0/1, strings (a breaker's "open")
`gateway_stats_info{source, key, value} 1`. Per source at most MAX_SERIES values are exported, so
a source keyed by client cannot blow up the scrape; sources in SKIP are exported elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

StatsSources = Mapping[str, Callable[[], dict[str, Any]]]
MAX_SERIES = 200
SKIP = frozenset({"tokens"})  # per client and model: gateway_tokens has them, bounded
log = logging.getLogger(__name__)


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from flatten(inner, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, bool | int | float | str) and prefix:
        yield prefix, value


class StatsCollector(Collector):
    def __init__(self, sources: StatsSources):
        self._sources = sources

    def collect(self):
        numbers = GaugeMetricFamily("gateway_stats", "Counters and states of gateway components",
                                    labels=("source", "key"))
        infos = GaugeMetricFamily("gateway_stats_info", "Textual states of gateway components",
                                  labels=("source", "key", "value"))
        for name, source in list(self._sources.items()):
            if name in SKIP:
                continue
            try:
                snapshot = source()
            except Exception:  # a broken source must not take the scrape down
                log.exception("stats source %s failed", name)
                continue
            for count, (key, value) in enumerate(flatten(snapshot)):
                if count >= MAX_SERIES:
                    break
                if isinstance(value, str):
                    infos.add_metric((name, key, value[:64]), 1)
                else:
                    numbers.add_metric((name, key), float(value))
        yield numbers
        yield infos
