"""The tally simulator (load/simulate.py, `make simulate`) on a small fleet: every scenario's
traffic at once stays within the stated bounds, and the checks that fail `make simulate`
fail on a row over a bound or over the storage target. `make simulate` runs the scenarios at
1,000 instances (a few minutes); this is the quick check."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from function_app.ratelimit.tally import aggregator

LOAD = str(Path(__file__).resolve().parents[2] / "load")


@pytest.fixture
def simulate(monkeypatch):
    monkeypatch.syspath_prepend(LOAD)
    # The simulator keeps aggregation on its virtual clock's loop and times it: undone after.
    monkeypatch.setattr(aggregator, "OFFLOAD", aggregator.OFFLOAD)
    monkeypatch.setattr(aggregator.Aggregator, "_sum", aggregator.Aggregator._sum)
    import simulate

    yield simulate
    for name in ("simulate", "sim_run", "sim_parts", "sim_measure", "sim_report", "sim_table"):
        sys.modules.pop(name, None)


def test_every_scenario_at_once_on_a_small_fleet_holds_its_bounds(simulate):
    args = simulate.parser().parse_args([
        "--seconds", "3", "--warmup", "7", "--rps", "1500", "--global-rps", "1100",
        "--clients", "300", "--client-rps", "20", "--budgets", "3", "--idle", "1",
        "--skew", "2", "--attackers", "300", "--tokens", "50"])
    row = asyncio.run(simulate.run_one(20, args))
    assert not simulate.exceeded(row), row
    assert row["admitted"] > 1000 and row["exact_admitted"] > 1000
    assert 0.5 < row["vs_exact"] < 1.5, row
    assert row["budget_spent_max"] > 0 and row["aggregations"] > 0
    assert row["aggregate_chars_max"] > 0 and row["hottest_partition_ops_s"] > 0


def test_the_checks_fail_on_a_bound_a_client_a_budget_or_the_storage_target(simulate):
    ok = {"global_admitted": 100.0, "bound": 100.0, "clients_over_bound": 0,
          "budgets_over": 0, "ops_per_admitted": simulate.OPS_TARGET}
    assert not simulate.exceeded(ok) and not simulate.too_costly(ok)
    assert simulate.exceeded({**ok, "global_admitted": 100.5})
    assert simulate.exceeded({**ok, "clients_over_bound": 1})
    assert simulate.exceeded({**ok, "budgets_over": 1})
    assert simulate.too_costly({**ok, "ops_per_admitted": 0.0501})
