"""Start the whole local stack in the foreground: Azurite, both backends and the gateway.

`make run` runs this. Ctrl-C or SIGTERM stops every process it started (each runs in its own
process group, so their children go too). When AzureWebJobsStorage is set, that storage is used
and no Azurite is started. With --ready-file, the URLs are written there as JSON once everything
answers (load/run.sh and tests wait for it); `.run/stack.env` lets `make gateway` join the stack.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import sys
import time
from pathlib import Path

# Run as a script (`python scripts/devstack.py`): make the repo root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.azurite import Azurite
from scripts.procs import PYTHON, ROOT, Proc, free_port, spawn

RUN_DIR = ROOT / ".run"


def pick_port(preferred: int) -> int:
    """`preferred` when nothing listens there, else any free port."""
    with socket.socket() as sock:
        taken = sock.connect_ex(("127.0.0.1", preferred)) == 0
    return free_port() if taken else preferred


class Stack:
    """The processes started so far, in order; stopped in reverse, each with its group."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        RUN_DIR.mkdir(exist_ok=True)

    def spawn(self, name: str, cmd: list[str], port: int, env: dict[str, str],
              cwd: Path = ROOT) -> Proc:
        proc = spawn(name, cmd, port=port, log_dir=RUN_DIR, env=env, cwd=cwd, timeout=60)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def first_exit(self) -> tuple[str, int] | None:
        for proc in self.procs:
            if proc.popen.poll() is not None:
                return proc.name, proc.popen.returncode
        return None


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
    gateway = stack.spawn("gateway", [PYTHON, "-m", "function_app.devhost"], gateway_port,
                          {**env, "PORT": str(gateway_port)})
    return {"gateway": gateway.url, **env}


def announce(urls: dict[str, str]) -> None:
    gateway = urls["gateway"]
    print(f"gateway        {gateway}  (logs in .run/)")
    print(f"python backend {urls['PY_SERVICE_URL']}")
    print(f"node backend   {urls['NODE_SERVICE_URL']}")
    print(f"\ntry:  curl -s {gateway}/healthz")
    print(f"      curl -s -X POST {gateway}/infer/python -H 'content-type: application/json' "
          "-d '{\"prompt\": \"hello\"}'")
    print("\nCtrl-C stops everything.", flush=True)


def _interrupt(*_: object) -> None:
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
        while (exited := stack.first_exit()) is None:
            time.sleep(0.5)
        print(f"{exited[0]} exited with {exited[1]}; stopping the stack", file=sys.stderr)
        return 1
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
