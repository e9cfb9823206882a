"""Start the whole local stack in the foreground: Azurite, both backends and the gateway.

`make run` runs this. The gateway is the app served by the local Functions host (funchost/),
which runs the real Python worker and restarts it when it dies; a backend or the host that
exits is reported and started again on the same port. A gateway whose settings are wrong is not
served: its /healthz answers 503 `misconfigured`, and this stops with the worker's message,
which names the setting. Ctrl-C or SIGTERM stops every process it started (each runs in its own
process group, so their children go too). When AzureWebJobsStorage is set, that storage is used
and no Azurite is started. With --ready-file, the URLs are written there as JSON once everything
answers (load/run.sh and tests wait for it); `.run/stack.env` lets `make gateway` join the stack.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import socket
import sys
import time
from pathlib import Path

import httpx

# Run as a script (`python scripts/devstack.py`): make the repo root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.azurite import Azurite
from scripts.procs import HOST_CMD, PYTHON, ROOT, WORKER_ENV, Proc, free_port, spawn

RUN_DIR = ROOT / ".run"


def pick_port(preferred: int) -> int:
    """`preferred` when nothing listens there, else any free port."""
    with socket.socket() as sock:
        taken = sock.connect_ex(("127.0.0.1", preferred)) == 0
    return free_port() if taken else preferred


_held = {"holding": False, "pending": False, "stopping": False}


@contextlib.contextmanager
def signals_held():
    """Ctrl-C and SIGTERM wait while a process starts, so it is on the list `stop()` ends
    before the stop begins (else one started in that moment would be left running). Not a
    signal mask: the children would inherit it."""
    _held["holding"] = True
    try:
        yield
    finally:
        _held["holding"] = False
    if _held["pending"] and not _held["stopping"]:
        _held["stopping"] = True
        raise KeyboardInterrupt


class Stack:
    """The processes started so far, in order; stopped in reverse, each with its group."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.recipes: dict[str, tuple] = {}  # name -> how to start it again
        RUN_DIR.mkdir(exist_ok=True)

    def spawn(self, name: str, cmd: list[str], port: int, env: dict[str, str],
              cwd: Path = ROOT) -> Proc:
        with signals_held():
            proc = spawn(name, cmd, port=port, log_dir=RUN_DIR, env=env, cwd=cwd, timeout=60)
            self.procs.append(proc)
        self.recipes[name] = (cmd, port, env, cwd)
        return proc

    def restart(self, proc: Proc) -> Proc:
        """Start `proc` again as before; the dead one's log is kept as `<name>.previous.log`."""
        if proc.name not in self.recipes:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}")
        cmd, port, env, cwd = self.recipes[proc.name]
        proc.log.replace(proc.log.with_suffix(".previous.log"))
        self.procs.remove(proc)
        with signals_held():
            fresh = spawn(proc.name, cmd, port=port, log_dir=RUN_DIR, env=env, cwd=cwd,
                          timeout=60)
            self.procs.append(fresh)
        return fresh

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def exited(self) -> list[Proc]:
        return [proc for proc in self.procs if proc.popen.poll() is not None]


def keep_running(stack: Stack) -> None:
    """Report and restart whatever exited (the host restarts its own worker)."""
    for proc in stack.exited():
        if proc.name not in stack.recipes:  # Azurite: the stack cannot go on without it
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}")
        print(f"{proc.name} exited with {proc.popen.returncode}; restarting it "
              f"(previous log: .run/{proc.name}.previous.log)", file=sys.stderr, flush=True)
        try:
            stack.restart(proc)
            print(f"{proc.name} is back on {proc.url}", file=sys.stderr, flush=True)
        except RuntimeError as exc:
            print(f"{proc.name} did not come back: {exc}", file=sys.stderr, flush=True)


def launch(stack: Stack, gateway_port: int) -> dict[str, str]:
    """Start everything, wait for each to answer, and return the stack's URLs and settings."""
    env: dict[str, str] = {}
    storage = os.environ.get("AzureWebJobsStorage", "")
    if not storage:
        azurite = Azurite(RUN_DIR, port=pick_port(10002), data_dir=RUN_DIR / "azurite").start()
        stack.procs.append(azurite.proc)
        storage = azurite.connection_string
    env["AzureWebJobsStorage"] = storage
    env["RATE_LIMIT_STORAGE_CONNECTION"] = os.environ.get("RATE_LIMIT_STORAGE_CONNECTION", storage)
    py_port, node_port = pick_port(8001), pick_port(8002)
    python = stack.spawn("python-backend", [PYTHON, "-m", "uvicorn", "app:app", "--host",
                                            "127.0.0.1", "--port", str(py_port),
                                            "--no-access-log"],
                         py_port, {"PORT": str(py_port)}, cwd=ROOT / "services/python")
    node = stack.spawn("node-backend", ["node", "server.js"], node_port,
                       {"PORT": str(node_port)}, cwd=ROOT / "services/node")
    env["PY_SERVICE_URL"], env["NODE_SERVICE_URL"] = python.url, node.url
    mcp_port = pick_port(8003)  # the MCP simulator at /mcp/tools, unless MCP_SERVERS says else
    mcp = stack.spawn("mcp-server", [PYTHON, "server.py"], mcp_port, {"PORT": str(mcp_port)},
                      cwd=ROOT / "services/mcp")
    env["MCP_SERVERS"] = os.environ.get("MCP_SERVERS") or json.dumps({"tools": f"{mcp.url}/mcp"})
    env.update({k: os.environ.get(k, v) for k, v in WORKER_ENV.items()})
    gateway = stack.spawn("gateway", HOST_CMD, gateway_port, {**env, "PORT": str(gateway_port)})
    check_configured(gateway)
    return {"gateway": gateway.url, **env}


def check_configured(gateway: Proc) -> None:
    """Raise with the worker's own message when the gateway answers 503 `misconfigured`."""
    answer = httpx.get(f"{gateway.url}/healthz", timeout=30)
    try:
        code = answer.json().get("error", {}).get("code")
    except ValueError:
        code = None
    if answer.status_code != 503 or code != "misconfigured":
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in gateway.log.read_text(errors="replace").splitlines()
                 if "gateway cannot start:" in line]
        if lines:
            raise RuntimeError(lines[-1].split("gateway cannot start:", 1)[1].strip())
        time.sleep(0.1)
    raise RuntimeError("the gateway is misconfigured (see .run/gateway.log)")


def announce(urls: dict[str, str]) -> None:
    gateway = urls["gateway"]
    print(f"gateway        {gateway}  (logs in .run/)")
    print(f"python backend {urls['PY_SERVICE_URL']}")
    print(f"node backend   {urls['NODE_SERVICE_URL']}")
    print(f"MCP servers    {urls['MCP_SERVERS']}  (at {gateway}/mcp/<name>, docs/MCP.md)")
    print(f"\ntry:  curl -s {gateway}/healthz")
    print(f"      curl -s -X POST {gateway}/infer/python -H 'content-type: application/json' "
          "-d '{\"prompt\": \"hello\"}'")
    print("\nCtrl-C stops everything.", flush=True)


def _interrupt(*_: object) -> None:
    """The first Ctrl-C or SIGTERM stops the stack; any that follow (a supervisor's SIGTERM and
    then Ctrl-C, or `timeout` and make each passing one on) are ignored: raised again, one
    landed in the cleanup and left every child running."""
    if _held["stopping"]:
        return
    if _held["holding"]:
        _held["pending"] = True
        return
    _held["stopping"] = True
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7071")))
    args = parser.parse_args()
    stack = Stack()
    # SIGINT explicitly too: a process started in the background by a non-interactive shell
    # inherits SIGINT as ignored, and Ctrl-C sent to its group would then stop nothing.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        urls = launch(stack, pick_port(args.port))
        # Quoted: connection strings hold ';', which `source` would take as a command separator.
        env_lines = [f"{k}={shlex.quote(v)}" for k, v in urls.items() if k != "gateway"]
        (RUN_DIR / "stack.env").write_text("\n".join(env_lines) + "\n")
        if args.ready_file:
            args.ready_file.write_text(json.dumps(urls))
        announce(urls)
        while True:
            time.sleep(0.5)
            keep_running(stack)
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()
        (RUN_DIR / "stack.env").unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
