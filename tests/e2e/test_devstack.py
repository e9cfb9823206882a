"""`make run`'s stack: everything starts, serves, and stops with nothing left running."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from scripts.procs import PYTHON, ROOT, free_port

pytestmark = pytest.mark.e2e


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"devstack exited early with {proc.returncode}"
        if path.exists() and path.read_text():
            return json.loads(path.read_text())
        time.sleep(0.2)
    raise AssertionError("devstack never became ready")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_stack_serves_then_stops_everything(tmp_path, stop_signal):
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"}
    proc = subprocess.Popen([PYTHON, "scripts/devstack.py", "--ready-file", str(ready),
                             "--port", str(free_port())], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        urls = wait_for(ready, proc)
        started = children_of(proc.pid)
        assert len(started) == 5  # azurite, two backends, the MCP simulator, gateway
        assert "127.0.0.1" in urls["AzureWebJobsStorage"]
        with httpx.Client(base_url=urls["gateway"], timeout=10) as client:
            assert client.get("/healthz").json()["backends"]["node"]["ok"] is True
            for route in ("python", "node"):
                answer = client.post(f"/infer/{route}", json={"prompt": "hi"})
                assert answer.json().get("result") == "echo: hi", answer.text
            chat = {"model": "sim-python", "stream": True, "max_tokens": 4,
                    "messages": [{"role": "user", "content": "hi"}]}
            with client.stream("POST", "/v1/chat/completions", json=chat) as stream:
                events = [line for line in stream.iter_lines() if line.startswith("data:")]
            assert stream.status_code == 200 and len(events) > 2
            init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "devstack", "version": "1"}}}
            mcp = client.post("/mcp/tools", json=init,
                              headers={"accept": "application/json, text/event-stream"})
            assert mcp.status_code == 200 and "gateway-sim-tools" in mcp.text
            assert events[-1] == "data: [DONE]"
    finally:
        proc.send_signal(stop_signal)
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, output
    assert "curl" in output
    assert [pid for pid in started if alive(pid)] == []


def test_signals_in_quick_succession_still_stop_everything(tmp_path):
    """A supervisor's SIGTERM followed at once by Ctrl-C (or `timeout` and make both passing
    one on): the second signal used to land in the cleanup and leave every child running."""
    proc, ready = start_devstack(tmp_path)
    try:
        wait_for(ready, proc)
        started = children_of(proc.pid)
        assert len(started) == 5
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            proc.send_signal(sig)
        output = proc.communicate(timeout=30)[0].decode()
    assert "Traceback" not in output, output
    assert [pid for pid in started if alive(pid)] == []


def start_devstack(tmp_path, **extra_env):
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"}
    proc = subprocess.Popen([PYTHON, "scripts/devstack.py", "--ready-file", str(ready),
                             "--port", str(free_port())], cwd=ROOT, env={**env, **extra_env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, ready


def worker_of(host_pid: int) -> int:
    """The worker process under the host: `python -m funchost.worker ...`."""
    for pid in children_of(host_pid):
        if b"funchost.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError("no worker process under the host")


def answered_within(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(f"{url}/infer/node", json={"prompt": "hi"}, timeout=2)
            if answer.status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


def test_killed_worker_and_backend_come_back_while_the_stack_serves(tmp_path):
    proc, ready = start_devstack(tmp_path)
    try:
        urls = wait_for(ready, proc)
        host = next(pid for pid in children_of(proc.pid)
                    if b"funchost" in Path(f"/proc/{pid}/cmdline").read_bytes())
        worker = worker_of(host)
        os.kill(worker, signal.SIGKILL)
        while alive(worker):
            time.sleep(0.05)
        assert answered_within(urls["gateway"], 10)
        assert worker_of(host) != worker  # a new worker answered, under the same host
        node = next(pid for pid in children_of(proc.pid)
                    if b"server.js" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(node, signal.SIGKILL)
        assert answered_within(urls["gateway"], 30)  # the node backend was started again
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, output
    assert "node-backend exited" in output
    log = (ROOT / ".run/gateway.log").read_text()
    assert "killed by SIGKILL; restarting it" in log


def test_a_bad_setting_stops_make_run_with_the_message(tmp_path):
    proc, _ = start_devstack(tmp_path, UPSTREAM_TIMEOUT_S="soon")
    started = []
    while proc.poll() is None and len(started) < 4:
        started = children_of(proc.pid)
        time.sleep(0.1)
    output = proc.communicate(timeout=120)[0].decode()
    assert started and [pid for pid in started if alive(pid)] == []
    assert proc.returncode == 1
    assert "setting UPSTREAM_TIMEOUT_S is invalid" in output
    assert "curl" not in output  # it never announced a gateway to use
