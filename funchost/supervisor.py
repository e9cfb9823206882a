"""Keeps one worker running: starts it, builds the route table from what it reports, restarts it
when it dies (logging why), and says whether it is ready.

While no worker is ready, `current` is None and the front answers 503 `worker_unavailable`.
Restarts back off from 0.5 s to 5 s while the worker keeps dying at start.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from .routes import HttpFunction, Route, build_table, http_function
from .workerproc import WorkerError, WorkerProcess

log = logging.getLogger("funchost")


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    def __init__(self, app_dir: Path, route_prefix: str, log_level: str,
                 on_change: Callable[[WorkerProcess | None], None] | None = None):
        self.app_dir = app_dir
        self.route_prefix = route_prefix
        self.log_level = log_level
        self.current: WorkerProcess | None = None
        self.table: list[Route] = []
        self.others: list[dict] = []  # functions without an HTTP trigger (timers)
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()  # set when the ready worker goes away
        self.restarts = 0
        self._stopping = False
        self._on_change = on_change or (lambda _: None)

    async def run(self) -> None:
        """Start the worker and keep it running until `stop()`."""
        delay = 0.5
        while not self._stopping:
            worker = WorkerProcess(self.app_dir, self.log_level)
            try:
                await worker.start()
            except (WorkerError, OSError, TimeoutError) as exc:
                log.error("worker failed to start: %s", exc or type(exc).__name__)
                await worker.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._install(worker)
            code = await worker.wait()
            await asyncio.sleep(0.2)  # a stop signal that killed the group too is seen first
            self.current = None
            self.ready.clear()
            self.changed.set()
            self._on_change(None)
            await worker.stop()
            if self._stopping:
                break
            self.restarts += 1
            last = next((line for line in reversed(worker.tail) if line.strip()), "")
            log.error("worker (pid %s) %s; restarting it%s", worker.pid, describe_exit(code),
                      f" (its last line: {last})" if last else "")
            delay = 0.5

    def _install(self, worker: WorkerProcess) -> None:
        http: list[HttpFunction] = []
        self.others = []
        for metadata in worker.functions:
            function = http_function(metadata)
            if function is None:
                self.others.append(metadata)
            else:
                http.append(function)
        self.table = build_table(http, self.route_prefix)
        self.current = worker
        self.changed = asyncio.Event()
        self.ready.set()
        self._on_change(worker)
        log.info("worker (pid %s) ready at %s with %d functions: %s", worker.pid,
                 worker.http_uri, len(worker.functions),
                 ", ".join(f"{r.function.name} [{'/'.join(r.function.methods) or '*'}] "
                           f"/{r.template}" for r in self.table) or "none")

    def stopping(self) -> None:
        """From now on a worker that exits is not restarted."""
        self._stopping = True

    async def stop(self) -> None:
        self._stopping = True
        worker = self.current
        if worker is not None:
            await worker.stop()
