"""The streams benchmark's own parts (load/stream_sim.py, load/stream_client.py) against real
processes: the lean backend answers a streamed chat completion with the Node simulator's event
shapes, and the raw client records what the benchmark counts (TTFT, gaps, [DONE], failures)."""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import pytest

from scripts.procs import PYTHON, ROOT, free_port, spawn, spawn_node

sys.path.insert(0, str(ROOT / "load"))
from stream_client import run_streams

BODY = {"model": "sim-stream", "stream": True, "max_tokens": 4,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Hold the line."}]}


@pytest.fixture(scope="module")
def lean(tmp_path_factory):
    port = free_port()
    proc = spawn("lean-sim", [PYTHON, str(ROOT / "load/stream_sim.py"), "--port", str(port),
                              "--ttft-ms", "5", "--token-ms", "5"],
                 port=port, log_dir=tmp_path_factory.mktemp("lean"))
    yield proc.url
    proc.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    proc = spawn_node("node-sim", tmp_path_factory.mktemp("node"),
                      {"TTFT_MS": "5", "TOKEN_MS": "5", "ANSWER_TOKENS": "4"})
    yield proc.url
    proc.stop()


def events(base: str) -> list:
    """The data events of one streamed answer, JSON-decoded ([DONE] as the string)."""
    with httpx.stream("POST", f"{base}/v1/chat/completions", json=BODY, timeout=10) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        text = answer.read().decode()
    data = [line[len("data: "):] for line in text.split("\n\n") if line.startswith("data: ")]
    return [d if d == "[DONE]" else json.loads(d) for d in data]


def shape(event) -> object:
    """An event's structure: its keys, and its choices' and deltas' keys, not the values."""
    if isinstance(event, str):
        return event
    choices = [(sorted(c), sorted(c["delta"])) for c in event["choices"]]
    return sorted(event), choices, sorted(event["usage"]) if event.get("usage") else None


def test_the_lean_backend_streams_what_the_node_simulator_streams(lean, node):
    mine, theirs = events(lean), events(node)
    assert [shape(e) for e in mine] == [shape(e) for e in theirs]
    assert mine[-1] == "[DONE]"
    assert mine[-2]["usage"]["completion_tokens"] == 4
    assert mine[0]["choices"][0]["delta"]["role"] == "assistant"
    assert sum(1 for e in mine[:-2] if e["choices"][0]["delta"].get("content")) == 4


def test_the_lean_backend_keeps_the_connection_for_the_next_request(lean):
    with httpx.Client(timeout=10) as client:
        for _ in range(2):
            with client.stream("POST", f"{lean}/v1/chat/completions", json=BODY) as answer:
                assert b"data: [DONE]" in answer.read()
        assert client.get(f"{lean}/healthz").json() == {"ok": True}


def test_the_raw_client_times_each_stream_to_its_end(lean):
    done = asyncio.run(run_streams("raw", f"{lean}/v1/chat/completions", BODY, [0.0, 0.01]))
    assert len(done["results"]) == 2
    for result in done["results"]:
        assert result["ok"] and result["ttft"] is not None
        assert 1 <= len(result["gaps"]) <= 4  # reads that hold data after the first
    assert done["cpu_s"] >= 0 and done["lags"]


def test_the_raw_client_counts_an_answer_without_done_as_an_error(lean):
    plain = {**BODY, "stream": False}  # the lean backend answers 404 to anything but a stream
    done = asyncio.run(run_streams("raw", f"{lean}/v1/chat/completions", plain, [0.0]))
    assert [r["ok"] for r in done["results"]] == [False]


def test_the_raw_client_counts_a_refused_connection_as_an_error():
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"  # nobody listens there
    done = asyncio.run(run_streams("raw", url, BODY, [0.0]))
    assert [r["ok"] for r in done["results"]] == [False]
