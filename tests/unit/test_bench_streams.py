"""The pure parts of `make bench-streams` (load/bench_streams.py, load/streams_reference.py):
where each target's added figures go in a row, the gateway over the bare streaming function
(--reference tenline), the verdict, and that the JSON of earlier runs (docs/perf) still reads.
No processes, no timings: rows are built by hand."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNS = sorted((ROOT / "docs/perf").glob("bench_streams-26-*.json"))
EARLIER = [p for p in RUNS if not json.loads(p.read_text())["args"].get("reference")]
WITH_REFERENCE = [p for p in RUNS if p not in EARLIER]


@pytest.fixture
def ref(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "load"))
    import streams_reference
    return streams_reference


def phase(ttft99: float, gap99: float, *, errors: int = 0, streams: int = 100,
          chunks: int = 19900, host_cpu_s: float | None = None,
          worker_cpu_s: float | None = None) -> dict:
    out = {"streams": streams, "errors": errors, "ttft_p50_ms": ttft99 - 5,
           "ttft_p99_ms": ttft99, "gap_p50_ms": 100.0, "gap_p99_ms": gap99, "chunks": chunks}
    if host_cpu_s is not None:
        out.update({"host_cpu_s": host_cpu_s, "worker_cpu_s": worker_cpu_s,
                    "cpu_s": host_cpu_s + worker_cpu_s, "host_rss_mb": 30.0,
                    "worker_rss_mb": 80.0, "host_rss_before_mb": 29.0,
                    "worker_rss_before_mb": 70.0, "kb_per_stream": 80.0})
    return out


def level_row(ref, n: int, gw: dict, bare: dict, direct: dict | None = None) -> dict:
    row = {"n": n, "direct": direct or phase(101.0, 102.0, streams=n)}
    ref.mark(row, "gateway", gw)
    ref.mark(row, "tenline", bare)
    row["over_tenline"] = ref.over_reference(row)
    return row


def test_the_gateway_keeps_unprefixed_keys_and_the_others_are_marked_by_name(ref):
    row = {"n": 100, "direct": phase(101.0, 102.0)}
    ref.mark(row, "gateway", phase(121.0, 112.0))
    ref.mark(row, "tenline", phase(106.0, 103.5))
    ref.mark(row, "base", phase(131.0, 122.0))
    assert row["ttft_p99_added"] == pytest.approx(20.0)
    assert row["gap_p99_added"] == pytest.approx(10.0)
    assert row["tenline_ttft_p99_added"] == pytest.approx(5.0)
    assert row["tenline_gap_p99_added"] == pytest.approx(1.5)
    assert row["base_ttft_p99_added"] == pytest.approx(30.0)
    assert row["tenline"]["ttft_p99_ms"] == 106.0
    assert "gateway_ttft_p99_added" not in row


def test_an_added_figure_is_none_when_a_phase_had_no_streams_answered(ref):
    row = {"n": 100, "direct": phase(101.0, 102.0)}
    ref.mark(row, "tenline", {**phase(0, 0, errors=100), "ttft_p99_ms": None, "gap_p99_ms": None})
    assert row["tenline_ttft_p99_added"] is None
    assert row["tenline_gap_p99_added"] is None


def test_cpu_per_chunk_counts_each_answered_streams_first_event(ref):
    # 19,900 gaps + 100 first events = 20,000 events; 2 s of host CPU = 100 µs a chunk.
    cpu = ref.cpu_us_per_chunk(phase(110, 105, host_cpu_s=2.0, worker_cpu_s=3.0))
    assert cpu == pytest.approx({"host": 100.0, "worker": 150.0, "total": 250.0})
    failed = phase(110, 105, errors=50, chunks=9950, host_cpu_s=1.0, worker_cpu_s=1.0)
    assert ref.cpu_us_per_chunk(failed)["host"] == pytest.approx(1e6 / 10000)
    assert ref.cpu_us_per_chunk(phase(110, 105)) is None  # the direct phase: no CPU watched


def test_over_reference_gives_differences_and_ratios_of_the_gateway_over_the_bare_function(ref):
    row = level_row(ref, 100, phase(131.0, 110.0, host_cpu_s=1.0, worker_cpu_s=4.0),
                    phase(111.0, 104.0, host_cpu_s=1.0, worker_cpu_s=1.0))
    over = row["over_tenline"]
    assert over["ttft_p99_added_ms"] == pytest.approx(
        {"gateway": 30.0, "tenline": 10.0, "difference": 20.0, "ratio": 3.0})
    assert over["gap_p99_added_ms"] == pytest.approx(
        {"gateway": 8.0, "tenline": 2.0, "difference": 6.0, "ratio": 4.0})
    assert over["cpu_us_per_chunk"]["ratio"] == pytest.approx(
        {"host": 1.0, "worker": 4.0, "total": 2.5})


def test_a_ratio_over_an_added_latency_of_zero_or_less_is_none_not_a_number(ref):
    row = level_row(ref, 100, phase(103.0, 105.0), phase(100.0, 102.0))  # tenline: -1 / 0 ms
    assert row["over_tenline"]["ttft_p99_added_ms"]["ratio"] is None
    assert row["over_tenline"]["ttft_p99_added_ms"]["difference"] == pytest.approx(3.0)
    assert row["over_tenline"]["gap_p99_added_ms"]["ratio"] is None
    assert row["over_tenline"]["cpu_us_per_chunk"]["ratio"] is None  # no CPU figures


def test_within_target_is_per_target_and_needs_zero_errors_on_both_sides(ref):
    rows = [level_row(ref, 100, phase(108.0, 105.0), phase(104.0, 103.0)),
            level_row(ref, 300, phase(115.0, 105.0), phase(109.0, 111.0)),
            level_row(ref, 1000, phase(140.0, 130.0), phase(105.0, 104.0, errors=1))]
    assert ref.within_target(rows, "gateway", 10.0) == 100
    assert ref.within_target(rows, "tenline", 10.0) == 300
    assert ref.within_target(rows, "base", 10.0) is None  # no row went through a base
    rows[0]["direct"]["errors"] = 2
    assert ref.within_target(rows, "gateway", 10.0) is None


def test_the_comparison_table_has_a_line_per_level_with_the_reference(ref):
    rows = [level_row(ref, 300, phase(131.0, 110.0, host_cpu_s=1.0, worker_cpu_s=4.0),
                      phase(111.0, 104.0, host_cpu_s=1.0, worker_cpu_s=1.0)),
            {"n": 1000, "direct": phase(101.0, 102.0)}]  # a level without the reference
    lines = ref.comparison_table(rows)
    assert len(lines) == 3
    assert lines[2].startswith("| 300 | 30.0 / 10.0 | 8.0 / 2.0 | 50 / 50 | 200 / 50 | ")
    assert lines[2].endswith("1.00 / 4.00 / 2.50x |")


@pytest.mark.parametrize("path", EARLIER, ids=lambda p: p.name)
def test_earlier_runs_keep_their_verdict_and_report(ref, path):
    """The JSON of earlier runs (no reference) reads as before: the same largest N, the same
    table rows, and no comparison table."""
    data = json.loads(path.read_text())
    assert ref.within_target(data["levels"], "gateway", data["target_added_ms"]) \
        == data["largest_within_target"]
    import bench_streams
    args = argparse.Namespace(**{**data["args"], "base": data["args"].get("base"),
                                 "ramp_s": data["args"].get("ramp_s")})
    text = bench_streams.report(data["levels"], data["largest_within_target"], args)
    targets = sum(name in r for r in data["levels"] for name in ("gateway", "base"))
    assert text.count("\n| ") - 1 == targets  # a row per target per level, after the header
    assert "(tenline)" not in text and "tenline (load/tenline_stream)" not in text


def test_a_run_with_the_reference_reports_its_rows_and_feeds_the_cost_script(ref):
    import bench_streams
    import cost
    rows = [level_row(ref, n, phase(131.0, 110.0, streams=n, host_cpu_s=1.0, worker_cpu_s=4.0),
                      phase(111.0, 104.0, streams=n, host_cpu_s=1.0, worker_cpu_s=1.0))
            for n in (100, 1000)]
    args = argparse.Namespace(stream_s=20.0, chunk_ms=100, ramp_s=None, clients=4, base=None)
    text = bench_streams.report(rows, None, args)
    assert "| 100 (tenline) | 0 / 0 | 10.0 / 10.0 | 0.0 / 2.0 |" in text
    assert "tenline (load/tenline_stream) within the target: **1000**" in text
    level = cost._level_for({"levels": rows}, 1000)
    assert level["n"] == 1000
    assert cost.memory_needed_mb(level["gateway"], 1000) == pytest.approx(
        2.0 * (99.0 + 1000 * 80.0 / 1024))


@pytest.mark.parametrize("path", WITH_REFERENCE, ids=lambda p: p.name)
def test_runs_with_the_reference_keep_their_verdicts_and_comparisons(ref, path):
    """The pass-9 JSON (docs/perf) read back: each target's verdict and each level's gateway
    over tenline come out of the stored rows again, and the report has a row per target."""
    data = json.loads(path.read_text())
    for name, best in data["largest_within_target_by"].items():
        assert ref.within_target(data["levels"], name, data["target_added_ms"]) == best
    for row in data["levels"]:
        assert row["over_tenline"] == ref.over_reference(row)
    import bench_streams
    text = bench_streams.report(data["levels"], data["largest_within_target"],
                                argparse.Namespace(**data["args"]))
    assert text.count(" (tenline) | ") == len(data["levels"])
    assert "\n".join(ref.comparison_table(data["levels"])) in text


class FakeClock:
    """time.monotonic and time.sleep for bench_streams.settle: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(("per_second", "limit", "waited"), [
    ([0.9, 0.4, 0.02], 15.0, 3.0),  # busy, busy, then quiet: stops after the quiet second
    ([0.9] * 20, 4.0, 4.0),  # never quiet: gives up at the limit
    ([0.0], 15.0, 1.0),  # already idle: one second to see it
])
def test_settle_waits_for_the_target_to_go_idle_or_the_limit(ref, monkeypatch, per_second,
                                                             limit, waited):
    import bench_streams
    clock = FakeClock()
    used = {"cpu": 0.0, "reads": 0}
    seconds = iter(per_second)

    def cpu_seconds(pid: int) -> float:
        # Two processes, read before and after each second: the second's CPU is split.
        used["reads"] += 1
        if used["reads"] % 4 == 3:
            used["cpu"] += next(seconds)
        return used["cpu"] / 2

    monkeypatch.setattr(bench_streams, "time", clock)
    monkeypatch.setattr(bench_streams, "cpu_seconds", cpu_seconds)
    assert bench_streams.settle((1, 2), limit) == pytest.approx(waited)
