"""The gateway's Prometheus metrics, on a registry owned by one gateway (no process globals).

Names follow OpenTelemetry where a convention exists (`gen_ai.client.token.usage` becomes
`gen_ai_client_token_usage`, durations in seconds); the gateway's own are `gateway_*`. Every
label is bounded: routes and backends come from configuration, models from the model table,
clients through ClientLabels. Components that keep their own counters (limiter, cache, breakers)
are read at scrape time through the gateway's stats sources (StatsCollector), so a new component
appears here by registering a stats source, without a change to this module.
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .labels import status_class
from .loop_metrics import (
    CountedDuration,
    HistogramCount,
    LoopCounter,
    LoopHistogram,
    _HistogramChild,
)
from .stats import StatsCollector, StatsSources

CONTENT_TYPE = CONTENT_TYPE_LATEST
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60)
# Bucket boundaries recommended by the OpenTelemetry GenAI semantic conventions.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)


class GatewayMetrics:
    """Instruments plus a cache of labelled children: `labels()` costs more than the increment."""

    def __init__(self, stats: StatsSources, instance: str):
        # `_created` series would double the scrape for nothing a dashboard reads (a library-wide
        # switch; this registry is the process's only one).
        disable_created_metrics()
        self.registry = registry = CollectorRegistry(auto_describe=False)
        keys = ("route", "backend", "status_class")
        # The four metrics every request updates are kept for the event loop (loop_metrics.py).
        # Requests answered are the duration's observations, counted at scrape (a request is
        # counted exactly when its duration is observed, under the same labels).
        duration = LoopHistogram("gateway_request_duration_seconds",
                                 "Time to the last byte of the answer", keys, DURATION_BUCKETS)
        self.requests = _registered(registry, HistogramCount("gateway_requests",
                                                             "Requests answered", duration))
        self.duration = _registered(registry, duration)
        self.rejections = Counter("gateway_rejections", "429 and 503 answers by deciding scope",
                                  ("status", "scope"), registry=registry)
        self.attempts = _registered(registry, LoopCounter(
            "gateway_upstream_attempts", "Upstream attempts by outcome", ("backend", "outcome")))
        self.attempt_duration = _registered(registry, LoopHistogram(
            "gateway_upstream_attempt_duration_seconds", "One upstream exchange, headers to end",
            ("backend",), DURATION_BUCKETS))
        self.tokens = ClientTokens()
        self.spend = ClientSpend()
        self.cache = Counter("gateway_cache_lookups", "Cache verdicts left by a cache stage",
                             ("result",), registry=registry)
        self.token_usage = Histogram(
            "gen_ai_client_token_usage", "Tokens per request (OpenTelemetry GenAI)",
            ("gen_ai_request_model", "gen_ai_token_type"), buckets=TOKEN_BUCKETS,
            registry=registry)
        self.ttft = Histogram("gen_ai_server_time_to_first_token_seconds",
                              "Request start to the first streamed chunk",
                              ("gen_ai_request_model",), buckets=TTFT_BUCKETS, registry=registry)
        self.tpot = Histogram("gen_ai_server_time_per_output_token_seconds",
                              "Streaming time per output token after the first",
                              ("gen_ai_request_model",), buckets=TPOT_BUCKETS, registry=registry)
        self.mcp = Counter("gateway_mcp_requests", "MCP requests by server, method, tool, outcome",
                           ("server", "method", "tool", "outcome"), registry=registry)
        info = Gauge("gateway_instance_info", "This gateway instance", ("instance",),
                     registry=registry)
        info.labels(instance).set(1)
        registry.register(StatsCollector(stats))
        self._children: dict[tuple, object] = {}
        self._request_series: dict[tuple[str, str, int], _HistogramChild] = {}
        self._attempt_series: dict[tuple[str, str], CountedDuration] = {}

    def child(self, metric, *labels: str):
        """The labelled child of `metric`, cached (label sets are bounded by construction)."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def request_series(self, route: str, backend: str, status: int) -> _HistogramChild:
        """The duration histogram's series of one answered request's labels (the status code's
        class), which also counts it (`requests`: HistogramCount) at each `observe(seconds)`;
        keyed by the code itself so its class is worked out once per label set."""
        key = (route, backend, status)
        series = self._request_series
        if key in series:
            return series[key]
        found = series[key] = self.child(self.duration, route, backend, status_class(status))
        return found

    def request_done(self, route: str, backend: str, status: int, seconds: float) -> None:
        """Count one answered request and observe its duration: `request_series(...).observe
        (seconds)` in one call, the series' cells updated here (_HistogramChild.observe's)."""
        try:  # one look-up; a label set's first request makes its series
            found = self._request_series[route, backend, status]
        except KeyError:
            found = self.request_series(route, backend, status)
        counts = found._counts
        counts[bisect_left(found._bounds, seconds)] += 1
        counts[-1] += seconds

    def attempt_done(self, backend: str, outcome: str, seconds: float) -> None:
        """Count one upstream attempt and observe its duration (the attempt observer's `done`;
        the series' cells updated here, as CountedDuration.observe does)."""
        try:  # one look-up; a label set's first attempt makes its series
            found = self._attempt_series[backend, outcome]
        except KeyError:
            found = self._attempt_series[backend, outcome] = CountedDuration(
                self.child(self.attempts, backend, outcome),
                self.child(self.attempt_duration, backend))
        found._cell[0] += 1
        counts = found._counts
        counts[bisect_left(found._bounds, seconds)] += 1
        counts[-1] += seconds

    def render(self) -> bytes:
        return generate_latest(self.registry) + self.tokens.render() + self.spend.render()


def _registered[C: (LoopCounter, LoopHistogram)](registry: CollectorRegistry, collector: C) -> C:
    registry.register(collector)
    return collector


class ClientTokens:
    """`gateway_tokens_total{gen_ai_request_model, client, gen_ai_token_type}`, kept and written
    here rather than by prometheus-client: with a thousand clients it is most of the scrape, and
    its labels (configured model names, hex hashes) are escaped once, when first seen."""

    HEADER = (b"# HELP gateway_tokens_total Tokens reported by backends, by model and client\n"
              b"# TYPE gateway_tokens_total counter\n")

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        self._prefix: dict[tuple[str, str, str], str] = {}

    def add(self, model: str, client: str, kind: str, count: int) -> None:
        key = (model, client, kind)
        if key not in self._counts:
            self._prefix[key] = (f'gateway_tokens_total{{gen_ai_request_model="{_escape(model)}",'
                                 f'client="{_escape(client)}",gen_ai_token_type="{kind}"}} ')
            self._counts[key] = 0
        self._counts[key] += count

    def render(self) -> bytes:
        prefix = self._prefix
        lines = [f"{prefix[key]}{count}\n" for key, count in list(self._counts.items())]
        return self.HEADER + "".join(lines).encode()


class ClientSpend:
    """`gateway_spend_total{gen_ai_request_model, client, key}`: the settled cost of requests
    in the currency of MODEL_PRICES (key: the gateway key's prefix, "" without one)."""

    HEADER = (b"# HELP gateway_spend_total Spend in currency (MODEL_PRICES), by model, "
              b"client and key\n# TYPE gateway_spend_total counter\n")

    def __init__(self) -> None:
        self._sums: dict[tuple[str, str, str], float] = {}

    def add(self, model: str, client: str, key: str, cost: float) -> None:
        slot = (model, client, key)
        self._sums[slot] = self._sums.get(slot, 0.0) + cost

    def render(self) -> bytes:
        lines = [f'gateway_spend_total{{gen_ai_request_model="{_escape(model)}",'
                 f'client="{_escape(client)}",key="{_escape(key)}"}} {total!r}\n'
                 for (model, client, key), total in list(self._sums.items())]
        return self.HEADER + "".join(lines).encode()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
