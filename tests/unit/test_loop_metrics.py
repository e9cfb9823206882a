"""The loop's counter and histogram expose exactly what prometheus-client's own Counter and
Histogram expose for the same updates (the /metrics text is unchanged), and refuse what they
refuse."""

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from function_app.telemetry.loop_metrics import (
    CountedDuration,
    HistogramCount,
    LoopCounter,
    LoopHistogram,
)
from function_app.telemetry.metrics import DURATION_BUCKETS

UPDATES = [(("/a", "node", "2xx"), 0.003), (("/a", "node", "2xx"), 0.005),
           (("/a", "node", "5xx"), 0.0051), (("/b", 'we"ird\\name\n', "4xx"), 61.0),
           (("/a", "node", "2xx"), 0.25), (("/b", 'we"ird\\name\n', "4xx"), 0.0)]
KEYS = ("route", "backend", "status_class")


def theirs(counter_alone: bool = True) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    count = Counter("gateway_requests", "Requests answered", KEYS, registry=registry)
    duration = Histogram("gateway_request_duration_seconds", "Time to the last byte", KEYS,
                         buckets=DURATION_BUCKETS, registry=registry)
    for labels, seconds in UPDATES:
        count.labels(*labels).inc()
        duration.labels(*labels).observe(seconds)
    if counter_alone:
        count.labels("/c", "x", "2xx").inc(2.5)
    return generate_latest(registry)


def ours(together: bool = False) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    count = LoopCounter("gateway_requests", "Requests answered", KEYS)
    duration = LoopHistogram("gateway_request_duration_seconds", "Time to the last byte", KEYS,
                             DURATION_BUCKETS)
    registry.register(count)
    registry.register(duration)
    for labels, seconds in UPDATES:
        if together:  # one call for both, as the request and attempt metrics update them
            CountedDuration(count.labels(*labels), duration.labels(*labels)).observe(seconds)
        else:
            count.labels(*labels).inc()
            duration.labels(*labels).observe(seconds)
    count.labels("/c", "x", "2xx").inc(2.5)
    return generate_latest(registry)


def test_the_exposition_is_the_one_prometheus_client_writes():
    from prometheus_client import disable_created_metrics

    disable_created_metrics()  # as GatewayMetrics does: no _created series either way
    assert ours() == theirs()
    assert ours(together=True) == theirs()


def test_a_count_read_from_the_histogram_is_the_counter_updated_beside_it():
    """GatewayMetrics' requests counter: each duration series' observations, at scrape."""
    from prometheus_client import disable_created_metrics

    disable_created_metrics()
    registry = CollectorRegistry(auto_describe=False)
    duration = LoopHistogram("gateway_request_duration_seconds", "Time to the last byte", KEYS,
                             DURATION_BUCKETS)
    registry.register(HistogramCount("gateway_requests", "Requests answered", duration))
    registry.register(duration)
    for labels, seconds in UPDATES:
        duration.labels(*labels).observe(seconds)
    assert generate_latest(registry) == theirs(counter_alone=False)
    for _ in range(3000):  # counts stay exact
        duration.labels("/a", "node", "2xx").observe(0.001)
    assert b'gateway_requests_total{backend="node",route="/a",status_class="2xx"} 3003.0' \
        in generate_latest(registry)


def test_what_prometheus_client_refuses_is_refused():
    count = LoopCounter("c", "d", ("a",))
    with pytest.raises(ValueError):
        count.labels("x").inc(-1)
    with pytest.raises(ValueError):
        count.labels("x", "y")
    with pytest.raises(ValueError):
        LoopHistogram("h", "d", ("a",), (1, 0.5))


def test_request_done_and_attempt_done_write_what_their_series_observe_writes():
    """GatewayMetrics.request_done and attempt_done update the series' cells themselves: the
    scrape is what CountedDuration.observe on the same series gives."""
    from function_app.telemetry.metrics import GatewayMetrics

    updates = [(("/a", "node", 200), 0.003), (("/a", "node", 200), 0.2), (("/a", "node", 503), 7),
               (("/b", "none", 404), 0.0), (("/a", "node", 201), 99.0), (("/a", "node", 200), 1)]
    direct, series = GatewayMetrics({}, "i"), GatewayMetrics({}, "i")
    for (route, backend, status), seconds in updates:
        direct.request_done(route, backend, status, seconds)
        series.request_series(route, backend, status).observe(seconds)
        direct.attempt_done(backend, f"{status // 100}xx", seconds)
        CountedDuration(series.attempts.labels(backend, f"{status // 100}xx"),
                        series.attempt_duration.labels(backend)).observe(seconds)
    text = direct.render()
    assert text == series.render()
    assert b'gateway_requests_total{backend="node",route="/a",status_class="2xx"} 4.0' in text
    assert b'gateway_upstream_attempts_total{backend="node",outcome="5xx"} 1.0' in text
