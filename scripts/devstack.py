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
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_DIR = ROOT / ".run"
PYTHON = sys.executable
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")  # Azurite's documented, public development key


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def pick_port(preferred: int) -> int:
    if port_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def azurite_connection_string(table_port: int) -> str:
    return ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};"
            f"TableEndpoint=http://127.0.0.1:{table_port}/devstoreaccount1;")


class Stack:
    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []
        RUN_DIR.mkdir(exist_ok=True)

    def start(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> None:
        log = open(RUN_DIR / f"{name}.log", "wb")
        proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.procs.append((name, proc))

    def wait_ready(self, name: str, url: str | None, port: int, timeout: float = 60) -> None:
        proc = dict(self.procs)[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see .run/{name}.log")
            if answers(url, port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not answer within {timeout:.0f} s; see .run/{name}.log")

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def first_exit(self) -> tuple[str, int] | None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                return name, proc.returncode
        return None


def answers(url: str | None, port: int) -> bool:
    try:
        if url is None:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status < 500
    except OSError:
        return False


def launch(stack: Stack, gateway_port: int) -> dict[str, str]:
    """Start everything, wait for each to answer, and return the stack's URLs and settings."""
    env: dict[str, str] = {}
    storage = os.environ.get("AzureWebJobsStorage", "")
    if not storage:
        table_port = pick_port(10002)
        data = RUN_DIR / "azurite"
        data.mkdir(exist_ok=True)
        stack.start("azurite", [str(ROOT / "node_modules/.bin/azurite-table"), "--tableHost",
                                "127.0.0.1", "--tablePort", str(table_port), "--location",
                                str(data), "--disableTelemetry", "--skipApiVersionCheck",
                                "--loose"], {})
        stack.wait_ready("azurite", None, table_port)
        storage = azurite_connection_string(table_port)
    env["AzureWebJobsStorage"] = storage
    env["RATE_LIMIT_STORAGE_CONNECTION"] = os.environ.get("RATE_LIMIT_STORAGE_CONNECTION", storage)
    py_port, node_port = pick_port(8001), pick_port(8002)
    stack.start("python-backend", [PYTHON, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                                   "--port", str(py_port), "--no-access-log"],
                {"PORT": str(py_port)}, cwd=ROOT / "services/python")
    stack.start("node-backend", ["node", "server.js"], {"PORT": str(node_port)},
                cwd=ROOT / "services/node")
    env["PY_SERVICE_URL"] = f"http://127.0.0.1:{py_port}"
    env["NODE_SERVICE_URL"] = f"http://127.0.0.1:{node_port}"
    stack.wait_ready("python-backend", f"{env['PY_SERVICE_URL']}/healthz", py_port)
    stack.wait_ready("node-backend", f"{env['NODE_SERVICE_URL']}/healthz", node_port)
    stack.start("gateway", [PYTHON, "-m", "function_app.devhost"],
                {**env, "PORT": str(gateway_port)})
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    stack.wait_ready("gateway", f"{gateway_url}/healthz", gateway_port)
    return {"gateway": gateway_url, **env}


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
