"""One worker process: started, initialised, indexed and loaded as the Functions host does it.

`WorkerProcess.start()` launches `python -m funchost.worker` with the app's environment, accepts
its connection on a private Unix socket, sends the worker init request (with the capabilities
the host sends), asks for the function metadata (indexing), loads each function, and waits until
the worker's HTTP server (its `HttpUri` capability) accepts connections. The worker's output
goes to this process's stderr, line by line, and its last lines are kept to say why it died.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .channel import encode, read_frame

log = logging.getLogger("funchost")
HOST_VERSION = "4.1040.0"
START_TIMEOUT_S = 60.0
# What the Functions host announces to an HTTP-streaming Python worker.
HOST_CAPABILITIES = {"HttpUri": "", "RpcHttpBodyOnly": "true", "RawHttpBodyBytes": "true",
                     "TypedDataCollection": "true", "RpcHttpTriggerMetadataRemoved": "true"}
# Host-only variables (funchost/host.py): never part of the app's environment.
ENV_FUNCTION_TIMEOUT = "FUNCHOST_FUNCTION_TIMEOUT_S"
ENV_HTTP_TIMEOUT = "FUNCHOST_HTTP_TIMEOUT_S"
ENV_HEADER_TIMEOUT = "FUNCHOST_HEADER_TIMEOUT_S"
# A measurement's wrapper of the worker command (shell words, e.g. `valgrind --tool=callgrind`;
# load/instructions_per_request.py) and the start timeout it needs (a slowed worker imports for
# longer). Local measurements only: unset, the worker starts as the platform starts it.
ENV_WORKER_WRAPPER = "FUNCHOST_WORKER_WRAPPER"
ENV_START_TIMEOUT = "FUNCHOST_START_TIMEOUT_S"
HOST_PREFIX = "FUNCHOST_"


class WorkerError(RuntimeError):
    """The worker failed to start, index or load; the message says where."""


class WorkerProcess:
    def __init__(self, app_dir: Path, log_level: str = "WARNING",
                 environ: dict[str, str] | None = None):
        self.app_dir = app_dir
        self.log_level = log_level
        environ = environ or os.environ
        self.environ = {k: v for k, v in environ.items() if not k.startswith(HOST_PREFIX)}
        self.wrapper = shlex.split(environ.get(ENV_WORKER_WRAPPER, ""))
        self.start_timeout_s = float(environ.get(ENV_START_TIMEOUT) or START_TIMEOUT_S)
        self.process: asyncio.subprocess.Process | None = None
        self.http_uri = ""
        self.functions: list[dict[str, Any]] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=30)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="funchost-")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self) -> None:
        async with asyncio.timeout(self.start_timeout_s):
            await self._spawn()
            init = await self.call("worker_init_request", {
                "host_version": HOST_VERSION, "capabilities": HOST_CAPABILITIES,
                "worker_directory": str(self.app_dir),
                "function_app_directory": str(self.app_dir)})
            _check(init, "worker init")
            self.http_uri = init.get("capabilities", {}).get("HttpUri", "")
            metadata = await self.call("functions_metadata_request", {})
            _check(metadata, "indexing")
            self.functions = metadata.get("function_metadata_results", [])
            for function in self.functions:
                _check(await self.call("function_load_request",
                                       {"function_id": function["function_id"]}),
                       f"loading {function['name']}")
            if self.http_uri:
                await self._wait_http()

    async def _spawn(self) -> None:
        channel = str(Path(self._tmp.name) / "worker.sock")
        connected: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if not connected.done():
                connected.set_result((reader, writer))
            else:
                writer.close()

        server = await asyncio.start_unix_server(on_connect, channel)
        self.process = await asyncio.create_subprocess_exec(
            *self.wrapper, sys.executable, "-m", "funchost.worker", "--channel", channel,
            "--app-dir", str(self.app_dir), "--log-level", self.log_level,
            env={**self.environ, "PYTHONPATH": _pythonpath(self.environ)},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        self._tasks.append(asyncio.create_task(self._copy_output()))
        exited = asyncio.create_task(self.process.wait())
        done, _ = await asyncio.wait({connected, exited}, return_when=asyncio.FIRST_COMPLETED)
        server.close()
        if connected not in done:
            raise WorkerError(f"worker exited with {self.process.returncode} before connecting")
        exited.cancel()
        reader, self._writer = connected.result()
        self._tasks.append(asyncio.create_task(self._read_replies(reader)))

    async def _copy_output(self) -> None:
        """Copies the worker's output a chunk at a time (one write per chunk, not per line:
        the worker writes a line per request) and keeps its last lines in `tail`."""
        assert self.process and self.process.stdout
        partial = b""
        while chunk := await self.process.stdout.read(1 << 16):
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()  # the unfinished last line waits for the next chunk
            if lines:
                text = "\n".join(line.decode(errors="replace").rstrip() for line in lines)
                self.tail.extend(text.split("\n")[-(self.tail.maxlen or 30):])
                sys.stderr.write(text + "\n")
                sys.stderr.flush()
        if partial:
            text = partial.decode(errors="replace").rstrip()
            self.tail.append(text)
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        while (frame := await read_frame(reader)) is not None:
            future = self._pending.pop(frame["id"], None)
            if future is not None and not future.done():
                if "error" in frame:
                    future.set_exception(WorkerError(frame["error"]))
                else:
                    future.set_result(frame["body"])
        for future in self._pending.values():
            if not future.done():
                future.set_exception(WorkerError("the worker closed its pipe"))
        self._pending.clear()

    def send(self, kind: str, body: dict[str, Any]) -> asyncio.Future:
        """Send one request; the future resolves to the worker's response (wire form)."""
        if self._writer is None or self._writer.is_closing():
            raise WorkerError("the worker is not connected")
        frame_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = future
        self._writer.write(encode({"id": frame_id, "type": kind, "body": body}))
        return future

    async def call(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.send(kind, body)

    async def _wait_http(self) -> None:
        parts = urlsplit(self.http_uri)
        while True:
            if self.process and self.process.returncode is not None:
                raise WorkerError("the worker exited before its HTTP server listened")
            try:
                _, writer = await asyncio.open_connection(parts.hostname, parts.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.02)

    async def wait(self) -> int:
        """Wait for the process to exit; its return code (negative: killed by that signal)."""
        assert self.process is not None
        code = await self.process.wait()
        for task in self._tasks:
            await asyncio.wait({task}, timeout=1.0)
        return code

    async def stop(self, grace: float = 5.0) -> None:
        """Close the pipe (the worker exits on its own), then SIGTERM, then SIGKILL."""
        if self._writer is not None:
            self._writer.close()
        if self.process is not None and self.process.returncode is None:
            deadline = time.monotonic() + grace
            for action in (None, self.process.terminate, self.process.kill):
                if action is not None:
                    try:
                        action()
                    except ProcessLookupError:
                        break
                try:
                    await asyncio.wait_for(self.process.wait(),
                                           max(0.1, (deadline - time.monotonic()) / 2))
                    break
                except TimeoutError:
                    continue
        for task in self._tasks:
            task.cancel()
        self._tmp.cleanup()


def _check(response: dict[str, Any], step: str) -> None:
    result = response.get("result") or {}
    if result.get("status", 0) != 1:
        exception = result.get("exception") or {}
        raise WorkerError(f"{step} failed: {exception.get('message', 'no detail')}")


def _pythonpath(environ: dict[str, str]) -> str:
    """This host's package importable from the worker, whatever the app folder is."""
    here = str(Path(__file__).resolve().parents[1])
    rest = environ.get("PYTHONPATH", "")
    return here + (os.pathsep + rest if rest else "")
