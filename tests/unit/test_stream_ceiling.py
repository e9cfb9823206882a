"""load/stream_ceiling.py: the worker's queue of chunks and opens, and the streams it holds
within a p99 budget (the arithmetic of docs/perf/pass13-streams.md). No timings."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ceiling(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "load"))
    import stream_ceiling
    return stream_ceiling


def test_utilisation_is_chunks_and_opens_per_second_times_their_cpu(ceiling):
    # 1,000 streams x (10 chunks/s x 100 us + one 2 ms open per 20 s) = 1.1 cores
    assert ceiling.utilisation(1000, 100e-6, 2e-3, 10, 20) == pytest.approx(1.1)


def test_a_stream_alone_never_waits(ceiling):
    assert ceiling.simulate(1, 100e-6, 2e-3, 10, 20) == (0.0, 0.0)


def test_waits_grow_with_the_streams(ceiling):
    light = ceiling.simulate(100, 100e-6, 2e-3, 10, 20, seconds=5)
    heavy = ceiling.simulate(800, 100e-6, 2e-3, 10, 20, seconds=5)
    assert heavy[0] > light[0] and heavy[1] > light[1]


def test_cheaper_chunks_hold_more_streams_and_never_past_saturation(ceiling):
    dear = ceiling.largest_within(0.010, 200e-6, 2e-3, 10, 20, step=50)
    cheap = ceiling.largest_within(0.010, 100e-6, 2e-3, 10, 20, step=50)
    assert 0 < dear < cheap
    assert ceiling.utilisation(cheap, 100e-6, 2e-3, 10, 20) < 1


def test_a_budget_below_one_open_holds_no_streams_that_open_together(ceiling):
    # Every open costs 50 ms: the p99 of opens waiting behind one another passes 10 ms.
    assert ceiling.largest_within(0.010, 100e-6, 0.05, 10, 0.5, step=50) == 0


def test_the_instance_bound_is_host_and_worker_cpu_under_the_headroom(ceiling):
    # per stream: 10 x (100 + 50) us + (2 + 1) ms / 20 s = 1.65 ms a second; 0.7 / 1.65e-3
    assert ceiling.instance_bound(1, 0.7, 100e-6, 2e-3, 50e-6, 1e-3, 10, 20) == 424
