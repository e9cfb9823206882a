"""load/profile_streams.py --callgrind's pure parts: the instruction figures of a round pair and
reading a callgrind dump's total. No valgrind, no timings."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def load_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "load"))
    monkeypatch.syspath_prepend(str(ROOT))


def test_per_chunk_net_of_opens_and_of_the_idle_worker(load_path):
    import profile_streams

    long = {"instructions": 1_000_000, "events": 1000, "wall_s": 12.0}
    short = {"instructions": 200_000, "events": 200, "wall_s": 2.0}
    figures = profile_streams.instruction_figures(long, short, streams=100, idle_per_s=8_000)
    assert figures == {"instructions_per_chunk": 1000.0,
                       "open_instructions_per_stream": 2000.0,
                       "net_instructions_per_chunk": 1000.0,  # 800,000 more over 800 more
                       "net_less_idle_instructions_per_chunk": 900.0}  # less 10 s x 8,000


def test_a_dump_total_is_read_from_its_summary_or_totals_line(load_path, tmp_path):
    import stream_callgrind

    dump = tmp_path / "1.out.1"
    dump.write_text("version: 1\ncreator: callgrind\nevents: Ir\nsummary: 123456\n\nfn=x\n")
    assert stream_callgrind.summary(dump) == 123456
    dump.write_text("events: Ir\nfn=x\n1 5\ntotals: 77\n")
    assert stream_callgrind.summary(dump) == 77
    dump.write_text("events: Ir\n")
    with pytest.raises(ValueError):
        stream_callgrind.summary(dump)


def test_the_hook_replaces_only_the_worker(tmp_path):
    """With the out directory set, `-m funchost.worker` re-executes itself under valgrind
    (a stand-in here, on PATH, that records its arguments); any other process runs as it is."""
    import os
    import subprocess
    import sys

    fake = tmp_path / "bin" / "valgrind"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT / "load/worker_callgrind"),
           "WORKER_CALLGRIND_OUT": str(tmp_path)}
    ran = subprocess.run([sys.executable, "-c", "print('as it is')"], env=env,
                         capture_output=True, text=True, check=True)
    assert ran.stdout == "as it is\n" and not (tmp_path / "args").exists()
    subprocess.run([sys.executable, "-m", "funchost.worker", "--channel", "x"], env=env,
                   cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    args = (tmp_path / "args").read_text().split()
    assert args[:2] == ["--tool=callgrind", "--instr-atstart=no"]
    assert f"--callgrind-out-file={tmp_path}/%p.out" in args
    assert args[-5:] == [sys.executable, "-m", "funchost.worker", "--channel", "x"]
