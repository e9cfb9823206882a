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
        assert len(started) == 4  # azurite, two backends, gateway
        assert "127.0.0.1" in urls["AzureWebJobsStorage"]
        with httpx.Client(base_url=urls["gateway"], timeout=10) as client:
            assert client.get("/healthz").json()["backends"]["node"]["ok"] is True
            for route in ("python", "node"):
                answer = client.post(f"/infer/{route}", json={"prompt": "hi"})
                assert answer.json().get("result") == "echo: hi", answer.text
    finally:
        proc.send_signal(stop_signal)
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, output
    assert "curl" in output
    assert [pid for pid in started if alive(pid)] == []
