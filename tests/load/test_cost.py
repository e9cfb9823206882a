"""load/cost.py: the Flex Consumption cost model over the benchmarks' JSON, checked on a
hand-made result whose answers are worked out by hand."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("cost", ROOT / "load/cost.py")
cost = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cost)


def test_streams_cost_the_memory_of_an_instance_for_their_time_shared_by_the_concurrency():
    # 1e6 streams x 20 s / 200 at once = 100,000 instance-seconds; x 2 GB = 200,000 GB-s.
    result = cost.per_million_streams(20.0, 200, 0.001, 2.0)
    assert result["instance_s"] == pytest.approx(100_000)
    assert result["gb_s"] == pytest.approx(200_000)
    assert result["on_demand_usd"] == pytest.approx(200_000 * 0.000026 + 0.40)


def test_the_cpu_caps_the_streams_an_instance_holds():
    # 10 ms CPU per stream-second: one core holds 100 streams, whatever the concurrency says.
    assert cost.per_million_streams(20.0, 1000, 0.01, 2.0)["streams_per_instance"] == 100


def test_short_requests_are_bound_by_cpu_long_ones_by_concurrency():
    short = cost.per_million_requests(1.0, 0.04, 64, 2.0)  # 1,600/s by concurrency, 1,000 by CPU
    long = cost.per_million_requests(1.0, 2.0, 64, 2.0)  # 32/s by concurrency
    assert (short["bound"], short["requests_per_instance_s"]) == ("cpu", 1000)
    assert (long["bound"], long["requests_per_instance_s"]) == ("concurrency", 32)


def test_the_defaults_follow_the_bicep():
    text = (ROOT / "infra/modules/functionapp.bicep").read_text()
    declared = int(re.search(r"^param perInstanceConcurrency int = (\d+)", text, re.M).group(1))
    assert cost.bicep_default("perInstanceConcurrency") == declared


def test_the_script_reads_both_results_and_reports_storage_per_limiter_mode(tmp_path):
    run = {"rps": 100, "host_cpu_ms": 0.5, "worker_cpu_ms": 1.5}
    ops = lambda n: {"limiter_storage_per_request": {"storage_round_trips": n}}  # noqa: E731
    bench = {"throughput": {"gateway (defaults)": {**run, **ops(0.04)},
                            "gateway (tally mode)": {**run, **ops(0.02)},
                            "gateway (limits off)": run},
             "cache": {"backend": "memory", "tiers": {}}}
    level = {"n": 100, "gateway": {"cpu_s": 4.0, "kb_per_stream": 100.0, "host_rss_before_mb": 30,
                                   "worker_rss_before_mb": 80}}
    streams = {"levels": [level], "args": {"stream_s": 20.0}}
    (tmp_path / "b.json").write_text(json.dumps(bench))
    (tmp_path / "s.json").write_text(json.dumps(streams))
    subprocess.run([sys.executable, str(ROOT / "load/cost.py"), "--bench", str(tmp_path / "b.json"),
                    "--streams", str(tmp_path / "s.json"), "--concurrency", "100",
                    "--out", str(tmp_path / "c.json")], check=True, capture_output=True)
    out = json.loads((tmp_path / "c.json").read_text())
    assert out["cpu_ms_per_request"] == 2.0
    assert out["cpu_s_per_stream_s"] == pytest.approx(4.0 / (100 * 20))
    storage = out["table_storage"]
    assert storage["gateway (defaults)"]["transactions_per_request"] == 0.04
    assert storage["gateway (tally mode)"]["usd_per_million"] == pytest.approx(0.02 * 100 * 0.00036)
    assert storage["gateway (limits off)"]["transactions_per_request"] == 0.0


def test_a_bench_with_several_processes_costs_their_median_cpu(tmp_path):
    # bench_gateway --processes: cpu_ms is the median across processes of host + worker, which
    # need not equal the median host plus the median worker.
    gw = {"rps": 100, "host_cpu_ms": 0.5, "worker_cpu_ms": 1.5, "cpu_ms": 2.2,
          "processes": [{"name": "gateway (defaults)", "cpu_ms": 2.2}]}
    bench = {"throughput": {"gateway (defaults)": gw}, "cache": None}
    level = {"n": 100, "gateway": {"cpu_s": 4.0, "kb_per_stream": 100.0, "host_rss_before_mb": 30,
                                   "worker_rss_before_mb": 80}}
    (tmp_path / "b.json").write_text(json.dumps(bench))
    (tmp_path / "s.json").write_text(json.dumps({"levels": [level], "args": {"stream_s": 20.0}}))
    subprocess.run([sys.executable, str(ROOT / "load/cost.py"), "--bench", str(tmp_path / "b.json"),
                    "--streams", str(tmp_path / "s.json"), "--concurrency", "100",
                    "--out", str(tmp_path / "c.json")], check=True, capture_output=True)
    assert json.loads((tmp_path / "c.json").read_text())["cpu_ms_per_request"] == 2.2
