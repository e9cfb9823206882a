"""The pure parts of `make bench` (load/bench_gateway.py) with --processes: the names and the
round order of each target's processes, a process's figures over its rounds, a target's over
its processes (median, spread), each ratio to the ten-line function with its range, the verdict
(met / missed / undecided), and that the JSON of earlier one-process runs (docs/perf) still
reads and gives the ratios it stored. No processes, no timings: rounds are built by hand."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNS = sorted((ROOT / "docs/perf").glob("bench-26-*.json"))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gateway_under_test",
                                                  ROOT / "load/bench_gateway.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_gateway_under_test", None)


def wrk_round(rps: float, host: float, worker: float, errors: int = 0, **extra) -> dict:
    return {"rps": rps, "p50_ms": 1000 / rps, "p99_ms": 4000 / rps, "errors": errors,
            "host_cpu_ms": host, "worker_cpu_ms": worker, **extra}


def target(bench, *processes: list[dict], name: str = "t") -> dict:
    """A target's figures from its processes' rounds, as throughput() makes them."""
    return bench.target_figures({bench.label(name, i): bench.process_figures(rounds)
                                 for i, rounds in enumerate(processes)})


# --- processes and their order ---------------------------------------------------------------

def test_every_function_gets_k_processes_the_direct_backend_and_tally_one(bench):
    groups = bench.members(bench.WRK_TARGETS, 3)
    assert groups["direct"] == ["direct"]
    assert groups[bench.TALLY] == [bench.TALLY]
    assert groups["ten-line function"] == ["ten-line function", "ten-line function #2",
                                           "ten-line function #3"]
    assert all(len(groups[g]) == 3 for g in bench.GATEWAYS)
    assert {bench.target_of(p) for ps in groups.values() for p in ps} == set(bench.WRK_TARGETS)


def test_one_process_keeps_the_names_of_the_bench_before(bench):
    assert bench.members(bench.WRK_TARGETS, 1) == {t: [t] for t in bench.WRK_TARGETS}


def test_a_round_visits_every_process_once_and_never_two_of_one_target_in_a_row(bench):
    groups = bench.members(bench.WRK_TARGETS, 3)
    order = bench.interleave(groups)
    assert sorted(order) == sorted(p for ps in groups.values() for p in ps)
    targets = [bench.target_of(p) for p in order]
    assert all(a != b for a, b in itertools.pairwise(targets))
    assert order[:len(bench.WRK_TARGETS)] == list(bench.WRK_TARGETS)  # first processes first


# --- a process over its rounds, a target over its processes ----------------------------------

def test_a_process_takes_the_median_of_each_figure_and_cpu_round_by_round(bench):
    # host and worker peak in different rounds: the median of their sums (1.5) is not the sum
    # of their medians (0.5 + 0.9 = 1.4); CPU per request is the former.
    rounds = [wrk_round(100, 0.5, 1.0, errors=1), wrk_round(120, 0.4, 0.9),
              wrk_round(90, 0.9, 0.6, errors=2)]
    got = bench.process_figures(rounds)
    assert got["rps"] == 100
    assert (got["host_cpu_ms"], got["worker_cpu_ms"]) == (0.5, 0.9)
    assert got["cpu_ms"] == pytest.approx(1.5)
    assert got["errors"] == 3
    assert got["rps_runs"] == [100, 120, 90]
    assert got["cpu_runs"] == pytest.approx([1.5, 1.3, 1.5])


def test_the_direct_backend_has_no_cpu_figures(bench):
    got = bench.process_figures([{"rps": 2000.0, "p50_ms": 1.0, "p99_ms": 3.0, "errors": 0}])
    assert "cpu_ms" not in got and "host_cpu_ms" not in got
    assert got["cpu_runs"] == [0.0]


def test_storage_per_request_is_the_median_of_the_rounds(bench):
    rounds = [wrk_round(100, 0.5, 1.0, limiter_storage_per_request={"storage_round_trips": x})
              for x in (0.01, 0.03, 0.02)]
    got = bench.process_figures(rounds)["limiter_storage_per_request"]
    assert got == {"storage_round_trips": 0.02}


def test_a_target_keeps_the_keys_of_before_as_medians_across_processes_with_their_spread(bench):
    got = target(bench, [wrk_round(100, 0.4, 1.0)], [wrk_round(110, 0.5, 1.2)],
                 [wrk_round(90, 0.3, 1.1)])
    assert got["rps"] == 100
    assert (got["host_cpu_ms"], got["worker_cpu_ms"]) == (0.4, 1.1)
    assert got["cpu_ms"] == pytest.approx(1.4)
    assert got["spread"]["rps"] == [90, 110]
    assert got["spread"]["cpu_ms"] == pytest.approx([1.4, 1.7])
    assert [p["name"] for p in got["processes"]] == ["t", "t #2", "t #3"]
    assert got["rps_runs"] == [100, 110, 90]  # every round of every process
    assert len(got["cpu_runs"]) == 3


def test_errors_of_every_round_and_process_count(bench):
    got = target(bench, [wrk_round(100, 0.4, 1.0, errors=2), wrk_round(100, 0.4, 1.0)],
                 [wrk_round(100, 0.4, 1.0, errors=5)])
    assert got["errors"] == 7


def test_the_open_loop_pools_a_targets_processes_and_keeps_each_ones_tail(bench):
    fast = [float(x) for x in range(1, 101)]  # p99 = 100 (pick takes index int(0.99 * n))
    slow = [float(x) for x in range(101, 201)]
    got = bench.open_loop_figures({"g": fast, "g #2": slow, "g #3": []},
                                  {"g": 1, "g #2": 0, "g #3": 0})
    assert got["requests"] == 200 and got["errors"] == 1
    assert got["p99_ms"] == 199.0  # pooled
    assert [(p["name"], p["p99_ms"]) for p in got["processes"]] == [("g", 100.0),
                                                                    ("g #2", 200.0)]


# --- ratios, ranges, verdicts -----------------------------------------------------------------

def test_a_ratio_pairs_process_i_with_process_i_and_takes_the_median_pair(bench):
    # a slot that is dear for both targets (the third) cancels in its pair
    ratio, span, pairs = bench.pair_ratios([9.0, 12.0, 15.0], [10.0, 10.0, 14.0])
    assert pairs == pytest.approx([0.9, 1.2, 15 / 14])
    assert ratio == pytest.approx(15 / 14)
    assert span == pytest.approx([0.9, 1.2])


def test_one_process_each_gives_a_range_of_one_point(bench):
    ratio, span, pairs = bench.pair_ratios([8.0], [10.0])
    assert ratio == span[0] == span[1] == pairs[0] == pytest.approx(0.8)


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.92, 1.05, "met"), (0.90, 0.95, "met"), (0.70, 0.89, "missed"), (0.85, 0.95, "undecided")])
def test_verdict_for_at_least_a_target(bench, low, high, expected):
    assert bench.verdict(low, high, 0.9, at_least=True) == expected


@pytest.mark.parametrize(("low", "high", "expected"), [
    (1.00, 1.10, "met"), (1.10, 1.15, "met"), (1.20, 1.40, "missed"), (1.10, 1.20, "undecided")])
def test_verdict_for_at_most_a_target(bench, low, high, expected):
    assert bench.verdict(low, high, 1.15, at_least=False) == expected


def latency_target(bench, *p99s: float) -> dict:
    rows = [{"name": bench.label("x", i), "p50_ms": p - 5, "p99_ms": p, "errors": 0,
             "requests": 100} for i, p in enumerate(p99s)]
    return {"p50_ms": min(p99s) - 5, "p99_ms": sorted(p99s)[len(p99s) // 2], "errors": 0,
            "requests": 100 * len(p99s), "processes": rows}


def test_verdicts_per_gateway_from_the_processes(bench):
    tenline = target(bench, *([wrk_round(r, 0.4, 0.8)] for r in (1000, 950, 1050)))
    defaults = target(bench, *([wrk_round(r, 0.4, 0.8 * f)] for r, f in
                               ((940, 1.05), (900, 1.10), (900, 1.00))))
    off = target(bench, *([wrk_round(r, 0.6, 1.2)] for r in (600, 650, 700)))
    tp = {"ten-line function": tenline, bench.GATEWAYS[0]: defaults, bench.GATEWAYS[1]: off}
    lat = {"direct": {"p50_ms": 40.0, "p99_ms": 50.0},
           "ten-line function": latency_target(bench, 52.0, 53.0, 54.0),
           bench.GATEWAYS[0]: latency_target(bench, 52.0, 52.5, 53.0),
           bench.GATEWAYS[1]: latency_target(bench, 52.0, 56.0, 60.0)}
    got = bench.verdicts(tp, lat)
    d, o = got[bench.GATEWAYS[0]], got[bench.GATEWAYS[1]]
    # defaults: RPS pairs 940/1000, 900/950, 900/1050: 0.857 .. 0.947 straddles 0.9
    assert d["rps_ratio_pairs"] == pytest.approx([0.94, 900 / 950, 900 / 1050])
    assert d["rps_ratio"] == pytest.approx(0.94)
    assert d["rps_ratio_range"] == pytest.approx([900 / 1050, 900 / 950])
    # CPU: 0.4 + 0.8 x (1.00 .. 1.10) over 1.2 flat: 1.0 .. 1.067, all under 1.15
    assert d["cpu_ratio_range"] == pytest.approx([1.0, (0.4 + 0.88) / 1.2])
    assert d["p99_added_range_ms"] == pytest.approx([2.0, 3.0])
    assert d["verdict"] == {"rps": "undecided", "cpu": "met", "p99": "met"}
    # limits off: every pair misses RPS and CPU; p99 added 2 .. 10 ms straddles 3
    assert o["cpu_ratio"] == pytest.approx(1.8 / 1.2)
    assert o["verdict"] == {"rps": "missed", "cpu": "missed", "p99": "undecided"}
    assert o["p99_added_ms"] == pytest.approx(6.0)  # the pooled figure, as before
    json.dumps(got)  # the JSON takes it as it is


# --- earlier runs' JSON ------------------------------------------------------------------------

@pytest.mark.parametrize("path", RUNS, ids=[p.name for p in RUNS])
def test_earlier_one_process_runs_still_read_and_give_the_ratios_they_stored(bench, path):
    run = json.loads(path.read_text())
    if run["throughput"] is None:  # --only-latency
        got = bench.latency_verdicts(run["latency"])
    else:
        got = bench.verdicts(run["throughput"], run["latency"])
    for gateway, stored in run["verdicts"].items():
        for key, value in stored.items():
            if isinstance(value, float):
                assert got[gateway][key] == pytest.approx(value), (gateway, key)
        if run["throughput"] is not None and "processes" not in run["throughput"][gateway]:
            low, high = got[gateway]["cpu_ratio_range"]
            assert low == pytest.approx(high)  # one process: no spread to see


# --- each limits-on process on tables of its own -----------------------------------------------

def test_each_limits_on_process_has_its_own_valid_tables_unless_rows_are_shared(bench, monkeypatch):
    from function_app.settings.specs import table_name
    on = {"RATE_LIMIT_STORAGE_CONNECTION": "UseDevelopmentStorage=true"}
    tally = {**on, "RATE_LIMIT_SYNC": "tally"}
    tags = [str(i) for i in range(3)] + [f"b{i}" for i in range(3)]
    tables = [bench.own_tables(env, tag) for env in (on, tally) for tag in tags]
    names = [t[k] for t in tables for k in ("RATE_LIMIT_TABLE", "ROUTING_TABLE")]
    assert len(set(names)) == len(names) == 24
    for name in names:
        assert table_name(name) == name
    assert bench.own_tables({"RATE_LIMIT_ENABLED": "false"}, "0") == {}
    monkeypatch.setattr(bench, "SHARED_ROWS", True)
    assert bench.own_tables(on, "0") == {}
