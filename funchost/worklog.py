"""The worker's log output: buffered, flushed a few times a second instead of once per line.

Every request writes a line (the gateway's JSON request log): flushed one by one, each costs a
write in the worker and a wake-up, a read and a write in the host that copies the output, which
measured as most of what telemetry cost per request. Lines at WARNING or above still flush at
once (a worker about to die says why); the rest reach stderr within FLUSH_SECONDS, and at exit.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time

FLUSH_SECONDS = 0.2
FORMAT = "%(asctime)s worker %(name)s %(levelname)s %(message)s"


class SecondCachedFormatter(logging.Formatter):
    """FORMAT, with the date and time formatted once per second rather than once per line
    (strftime was a third of formatting a request's line); the same text as Formatter's."""

    def __init__(self) -> None:
        super().__init__(FORMAT)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return self.default_msec_format % (self._text, record.msecs)


class BufferedStderrHandler(logging.StreamHandler):
    """A StreamHandler on a block-buffered stderr that flushes on a timer, not per record."""

    def __init__(self) -> None:
        stream = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False), 1 << 16),
                                  encoding="utf-8", errors="replace", line_buffering=False)
        super().__init__(stream)
        self.setFormatter(SecondCachedFormatter())
        self._timer: asyncio.TimerHandle | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except Exception:  # as StreamHandler: a log line never breaks the caller
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING:
            self.flush()
        elif self._timer is None:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread (a library's worker thread): flush now
            self.flush()
            return
        self._timer = loop.call_later(FLUSH_SECONDS, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.flush()


def install(level: int = logging.INFO) -> BufferedStderrHandler:
    """Root logs through one BufferedStderrHandler (replacing basicConfig's stream handler)."""
    handler = BufferedStderrHandler()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # FORMAT names none of these, so LogRecord need not look them up for every line (the
    # logging HOWTO's "Optimization" switches).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False
    return handler
