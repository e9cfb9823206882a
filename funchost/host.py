"""The local Functions host: `python -m funchost [--app-dir .] [--port 7071]`.

Starts the worker (funchost/worker.py) and, once it has indexed and loaded the app's functions
and its HTTP server listens, serves HTTP on 127.0.0.1:PORT (PORT from the environment, default
7071). Function keys are off unless FUNCHOST_FUNCTION_KEYS (comma-separated) or
FUNCHOST_MASTER_KEY is set. FUNCHOST_FUNCTION_TIMEOUT_S, FUNCHOST_HTTP_TIMEOUT_S and
FUNCHOST_HEADER_TIMEOUT_S override the timeouts (tests shorten them). No FUNCHOST_* variable
reaches the app's environment. Timer-triggered functions run
on their schedules. Ctrl-C or SIGTERM stops the server and the worker; nothing is left running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import uvicorn

from .auth import Keys
from .front import Front
from .hostconfig import Limits, body_limit, load_host_config
from .protocol import guarded_protocol
from .supervisor import Supervisor
from .timers import TimerRunner
from .workerproc import ENV_FUNCTION_TIMEOUT, ENV_HEADER_TIMEOUT, ENV_HTTP_TIMEOUT

log = logging.getLogger("funchost")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the host decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def listening_socket(host: str, port: int) -> socket.socket:
    """The host's own port, bound and listening before the worker starts. The worker's HTTP
    server takes a free port of its own as it starts; bound only once the worker was ready, the
    host's port could already be that one (the worker holding it, the host failing with
    'address already in use'). Requests that arrive before the worker is ready wait in the
    backlog and are served once it is."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


async def run(args: argparse.Namespace, app_dir: Path) -> int:
    config = load_host_config(app_dir)
    sock = listening_socket(args.host, args.port)
    limits = Limits(max_body_bytes=body_limit(dict(os.environ)),
                    http_timeout_s=args.http_timeout or Limits.http_timeout_s,
                    header_timeout_s=args.header_timeout or Limits.header_timeout_s)
    keys = Keys.parse(os.environ.get("FUNCHOST_FUNCTION_KEYS", ""),
                      os.environ.get("FUNCHOST_MASTER_KEY", ""))
    front: Front | None = None
    supervisor = Supervisor(app_dir, config.route_prefix, args.worker_log_level,
                            on_change=lambda w: front and front.worker_changed(w))
    front = Front(supervisor, keys, limits, args.function_timeout or config.function_timeout_s)
    server = _Server(uvicorn.Config(
        front, host=args.host, port=args.port, http=guarded_protocol(limits),
        lifespan="off", access_log=False, log_level="warning", proxy_headers=False,
        server_header=False, date_header=False, timeout_keep_alive=120))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _stopper(stop, supervisor, server))
    supervising = asyncio.create_task(supervisor.run())
    timers = TimerRunner(supervisor)
    try:
        ready = asyncio.create_task(supervisor.ready.wait())
        await asyncio.wait({ready, asyncio.create_task(stop.wait())},
                           return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            return 0
        # Start-up's objects live as long as the host: out of the collector's generations, so a
        # full collection under a thousand streams scans only what the streams made (issue #26).
        gc.freeze()
        log.info("functions host on http://%s:%d (keys %s)", args.host, sock.getsockname()[1],
                 "required" if keys.enabled else "off, as under func start")
        timer_task = asyncio.create_task(timers.run())
        await server.serve(sockets=[sock])
        timer_task.cancel()
        return 0
    finally:
        sock.close()
        await supervisor.stop()
        supervising.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervising


def _stopper(stop: asyncio.Event, supervisor: Supervisor, server: uvicorn.Server):
    def on_signal() -> None:
        supervisor.stopping()
        server.should_exit = True
        stop.set()
    return on_signal


def main() -> None:
    parser = argparse.ArgumentParser(description="Local Azure Functions host for this app")
    parser.add_argument("--app-dir", default=".")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "7071")))
    parser.add_argument("--worker-log-level", default="WARNING")
    env = os.environ.get
    parser.add_argument("--function-timeout", type=float, default=env(ENV_FUNCTION_TIMEOUT),
                        help=f"seconds; else host.json's functionTimeout (${ENV_FUNCTION_TIMEOUT})")
    parser.add_argument("--http-timeout", type=float, default=env(ENV_HTTP_TIMEOUT),
                        help=f"seconds; default 230 (${ENV_HTTP_TIMEOUT})")
    parser.add_argument("--header-timeout", type=float, default=env(ENV_HEADER_TIMEOUT),
                        help=f"seconds; default 30 (${ENV_HEADER_TIMEOUT})")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s host %(levelname)s %(message)s")
    app_dir = Path(args.app_dir).resolve()
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    sys.exit(runner(run(args, app_dir)))


if __name__ == "__main__":
    main()
