"""load/report.py on summaries recorded from real k6 runs, and the k6 scripts' validity."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.procs import ROOT

FIXTURES = Path(__file__).parent / "fixtures"
SCRIPTS = sorted((ROOT / "load").glob("*.js"))
K6 = Path(os.environ.get("K6", ROOT / "bin" / "k6"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load_report_module():
    spec = importlib.util.spec_from_file_location("load_report", ROOT / "load" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


report = _load_report_module()


def summary(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def baseline():
    """A shortened baseline (100 RPS) against a simulator failing about 1 % of requests."""
    return report.parse_summary(summary("summary.json"))


@pytest.fixture
def ratelimited():
    """ratelimit.js at 100 RPS against a stand-in limited to 40 RPS that sets X-Cache."""
    return report.parse_summary(summary("ratelimit.json"))


def test_main_stage_is_measured_from_scenario_submetrics(baseline):
    assert baseline.profile == "baseline"
    assert baseline.scope == "scenario 'main'"
    assert baseline.latency_metric == "http_req_duration{scenario:main}"
    assert baseline.requests == 1501  # the main stage only; the run made 1752
    assert baseline.rps == pytest.approx(1501 / 15)
    assert baseline.target_rps == 100
    assert baseline.latency_ms == pytest.approx(
        {"p(50)": 43.371208, "p(90)": 52.142821, "p(95)": 52.707264, "p(99)": 54.368235})


def test_error_rate_counts_failed_requests_of_the_main_stage(baseline):
    assert baseline.errors == 16
    assert baseline.error_rate == pytest.approx(16 / 1501)
    assert baseline.checks == (1732, 1752)


def test_error_rate_of_a_run_without_requests_is_zero():
    data = {"metrics": {"http_reqs": {"values": {"count": 0, "rate": 0}}}}
    parsed = report.parse_summary(data)
    assert (parsed.requests, parsed.errors, parsed.error_rate) == (0, 0, 0.0)


def test_thresholds_keep_their_verdicts(baseline):
    assert [(t.metric, t.rule, t.ok) for t in baseline.thresholds] == [
        ("http_req_duration{scenario:main}", "p(95)<200", True),
        ("http_req_duration{scenario:main}", "p(99)<400", True),
        ("http_req_failed{scenario:main}", "rate<0.001", False),
    ]
    assert baseline.thresholds_passed == 2
    assert baseline.latency_limits() == {"p(95)": 200.0, "p(99)": 400.0}


def test_whole_run_profile_reports_429_rate_and_cache_hits(ratelimited):
    assert ratelimited.scope == "whole run"
    assert ratelimited.requests == 1000
    assert ratelimited.rps == pytest.approx(99.57975341509986)
    assert ratelimited.rate_limited == pytest.approx(0.561)
    assert ratelimited.cache_hits == 149
    assert ratelimited.error_rate == 0.0  # 429 is an expected status in ratelimit.js


def test_429_rate_falls_back_to_the_status_tagged_counter():
    data = summary("ratelimit.json")
    del data["metrics"]["rate_limited"]
    data["metrics"]["http_reqs{status:429}"] = {"values": {"count": 250, "rate": 25.0}}
    assert report.parse_summary(data).rate_limited == pytest.approx(0.25)


def test_absent_metrics_leave_their_rows_out(baseline):
    rows = dict(report.summary_rows(baseline))
    assert "Cache hits (X-Cache: HIT)" not in rows
    assert rows["429 rate"] == "0.00 %"


def test_markdown_table_rows(baseline):
    text = report.markdown(baseline, "baseline.png")
    for row in (
        "| Requests | 1501 |",
        "| Throughput | 100.1 req/s (target 100) |",
        "| Latency p50 | 43.4 ms |",
        "| Latency p95 | 52.7 ms |",
        "| Latency p99 | 54.4 ms |",
        "| Error rate | 1.07 % (16 failed) |",
        "| Checks | 1732 of 1752 passed |",
        "| Thresholds | 2 of 3 passed (1 FAILED) |",
        "| `http_req_failed{scenario:main}` | `rate<0.001` | **FAIL** |",
        "| `http_req_duration{scenario:main}` | `p(95)<200` | pass |",
        "![baseline latency and throughput](baseline.png)",
    ):
        assert row in text.splitlines()


def test_command_line_writes_markdown_and_png(tmp_path):
    out = tmp_path / "perf" / "ratelimit"
    assert report.main([str(FIXTURES / "ratelimit.json"), "--out", str(out)]) == 0
    assert "| 429 rate | 56.10 % |" in (tmp_path / "perf" / "ratelimit.md").read_text()
    png = (tmp_path / "perf" / "ratelimit.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 10_000


# --- the k6 scripts --------------------------------------------------------------------------

def inspect(script: Path, *env: str) -> dict:
    if not K6.exists():
        pytest.skip(f"k6 not found at {K6}: run load/install-k6.sh or set K6")
    args = [arg for pair in env for arg in ("-e", pair)]
    done = subprocess.run([str(K6), "inspect", *args, str(script)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_profile_is_present():
    names = {script.stem for script in SCRIPTS}
    assert names == {"baseline", "cache", "optimized", "ratelimit", "smoke", "soak", "spike",
                     "stream"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_script_is_valid_and_exports_percentiles(script):
    options = inspect(script)
    assert options["scenarios"]
    assert {"p(50)", "p(90)", "p(95)", "p(99)", "count"} <= set(options["summaryTrendStats"])


@pytest.mark.parametrize(("name", "expected"), [
    ("baseline", {"http_req_failed{scenario:main}": ["rate<0.001"],
                  "http_req_duration{scenario:main}": ["p(95)<200", "p(99)<400"]}),
    ("optimized", {"http_req_failed{scenario:main}": ["rate<0.001"],
                   "http_req_duration{scenario:main}": ["p(95)<140", "p(99)<280"]}),
    ("smoke", {"http_req_failed": ["rate==0"], "checks": ["rate==1"]}),
])
def test_thresholds(name, expected):
    thresholds = inspect(ROOT / "load" / f"{name}.js")["thresholds"]
    for metric, rules in expected.items():
        assert thresholds[metric] == rules


def test_rate_and_duration_can_be_overridden():
    scenarios = inspect(ROOT / "load" / "baseline.js", "RATE=10", "DURATION=5s")["scenarios"]
    assert (scenarios["main"]["rate"], scenarios["main"]["duration"]) == (10, "5s")
    assert scenarios["warmup"]["rate"] == 50


def test_bad_override_fails_fast():
    if not K6.exists():
        pytest.skip(f"k6 not found at {K6}: run load/install-k6.sh or set K6")
    done = subprocess.run([str(K6), "inspect", "-e", "RATE=fast", "load/baseline.js"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode != 0
    assert "RATE=fast is not a positive number" in done.stderr


def test_cache_profile_reports_hit_ratio_rps_and_p95_per_backend(tmp_path):
    """A recorded `make load PROFILE=cache` run (40 VUs, 20 s per backend)."""
    parsed = report.parse_summary(summary("cache.json"))
    assert [row.scenario for row in parsed.cache] == ["python", "node"]
    for row in parsed.cache:
        assert row.hit_ratio >= 0.95 and row.requests > 0
        assert row.rps == pytest.approx(row.requests / 20)
        assert row.p95_ms > 0
    text = report.markdown(parsed, "cache.png")
    assert "## Cache, per backend" in text and "| python |" in text
    report.render_chart(parsed, tmp_path / "cache.png")
    assert (tmp_path / "cache.png").read_bytes().startswith(PNG_MAGIC)
    assert report.parse_summary(summary("summary.json")).cache == ()
