"""The worker process: the real worker library, driven over the host's pipe.

    python -m funchost.worker --channel <socket path> --app-dir <folder>

The host starts this; `ps` shows it by this command line. It connects to the host's socket and,
for every frame, calls the matching `azure_functions_runtime` handler with an event object
(`.request` the streaming message, `.properties` holding `protos` and `host`) as the Functions
host's proxy worker does, then sends the response message back. Invocations run concurrently: an
HTTP invocation waits inside the library until the worker's HTTP server receives its request.
The process ends when the host closes the pipe; SIGINT is ignored (the host stops it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from . import messages, worklog
from .channel import encode, read_frame

log = logging.getLogger("funchost.worker")
BIND_HOST = "127.0.0.1"


@dataclass
class Event:
    """What each library handler takes: the message and the host's properties."""

    request: messages.StreamingMessage
    properties: dict[str, Any] = field(default_factory=dict)


def build_request(kind: str, body: dict[str, Any]) -> messages.StreamingMessage:
    """The streaming message for one frame from the host."""
    if kind == "worker_init_request":
        inner: messages.Message = messages.WorkerInitRequest(**body)
    elif kind == "function_load_request":
        inner = messages.FunctionLoadRequest(function_id=body["function_id"])
    elif kind == "invocation_request":
        inner = messages.invocation_request(body)
    elif kind == "function_environment_reload_request":
        inner = messages.FunctionEnvironmentReloadRequest(**body)
    elif kind == "functions_metadata_request":
        return messages.StreamingMessage()
    else:
        raise ValueError(f"unknown request type {kind!r}")
    return messages.StreamingMessage(**{kind: inner})


async def handle(runtime: Any, frame: dict[str, Any], writer: asyncio.StreamWriter) -> None:
    kind = frame["type"]
    try:
        event = Event(build_request(kind, frame.get("body") or {}),
                      {"protos": messages, "host": BIND_HOST})
        response = await getattr(runtime, kind)(event)
        if kind in ("worker_init_request", "function_environment_reload_request"):
            await asyncio.sleep(0.05)  # the HTTP server's uvicorn has configured its logging
            quiet_logs(LOG_LEVEL[0])
        reply = {"id": frame["id"], "body": messages.to_wire(response)}
    except Exception as exc:  # the handler itself broke: the host logs it and fails the call
        log.exception("%s failed", kind)
        reply = {"id": frame["id"], "error": f"{type(exc).__name__}: {exc}"}
    writer.write(encode(reply))


async def serve(channel: str) -> None:
    import azure_functions_runtime as runtime

    reader, writer = await asyncio.open_unix_connection(channel)
    runtime.start_threadpool_executor()
    tasks: set[asyncio.Task] = set()
    try:
        while (frame := await read_frame(reader)) is not None:
            task = asyncio.create_task(handle(runtime, frame, writer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    finally:
        runtime.stop_threadpool_executor()
    log.info("host closed the pipe; worker exits")
    # As the Functions host ends a worker: at once. Unwinding the library's server and the
    # app's open clients here would only log cancellations and unclosed sessions.
    logging.shutdown()
    os._exit(0)


LOG_LEVEL = ["WARNING"]


def quiet_logs(level: str) -> None:
    """The library and uvicorn log every request at INFO; the host's log level decides."""
    for name in ("azure.functions", "uvicorn.access", "uvicorn.error", "uvicorn"):
        logging.getLogger(name).setLevel(level)


def configure_logging(level: str) -> None:
    worklog.install(logging.INFO)
    LOG_LEVEL[0] = level
    quiet_logs(level)


def main() -> None:
    parser = argparse.ArgumentParser(description="funchost worker")
    parser.add_argument("--channel", required=True)
    parser.add_argument("--app-dir", required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    configure_logging(args.log_level.upper())
    # Ctrl-C in a terminal reaches the whole process group; the host decides when this ends
    # (it closes the pipe), so the worker does not stop half-way on its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # As the Functions host runs the worker: in the app folder, which is importable.
    os.chdir(args.app_dir)
    sys.path.insert(0, args.app_dir)
    try:
        import uvloop
        uvloop.run(serve(args.channel))
    except ImportError:
        asyncio.run(serve(args.channel))


if __name__ == "__main__":
    main()
