"""The request log's LogRecord, made without `Logger.makeRecord`'s per-record fixed work.

The request log writes one INFO record per request from one place, so the parts of
`logging.LogRecord.__init__` that depend only on that place (level name, path, file name,
module, function, line: a level-name look-up and five path calls) are the same every time.
`RecordMaker` takes them from one record the standard library made at start and fills in per
record exactly what `LogRecord.__init__` does (the time from `time.time_ns`, and thread,
process and task as the module switches `logging.logThreads`... say at that moment).

It is used only while nothing can tell the difference: the record factory is the standard
`LogRecord` and the logger's class does not override `makeRecord` (an instrumentation that
installs its own factory, as OpenTelemetry's logging instrumentation does, gets its records
made by `makeRecord` as before). tests/unit/test_request_log_record.py compares every attribute
with the standard library's record, for each combination of the switches.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

_LogRecord = logging.LogRecord
_new = object.__new__


class RecordMaker:
    """Makes INFO records for `logger` as `makeRecord(name, INFO, path, line, msg, None, None,
    func)` would."""

    def __init__(self, logger: logging.Logger, path: str, line: int, func: str) -> None:
        self._logger = logger
        self._where = (path, line, func)
        template = _LogRecord(logger.name, logging.INFO, path, line, "", None, None, func)
        self._template = dict(template.__dict__)
        # The template when all four switches are off (the local worker's setting,
        # funchost/worklog.py): the five fields they decide are None, set here once.
        self._quiet = {**self._template, "thread": None, "threadName": None,
                       "processName": None, "process": None, "taskName": None}

    def usable(self) -> bool:
        """Whether a record made here is what `makeRecord` would make now."""
        return (logging.getLogRecordFactory() is _LogRecord
                and type(self._logger).makeRecord is logging.Logger.makeRecord)

    def make(self, msg: str) -> logging.LogRecord:
        """One record; call only when `usable()`."""
        switched = logging.logThreads or logging.logMultiprocessing or logging.logProcesses \
            or logging.logAsyncioTasks
        # With all four switches off (the local worker's setting) the quiet template's five
        # fields are None already. The key order is LogRecord's (updating keeps it).
        fields = self._template.copy() if switched else self._quiet.copy()
        ct = time.time_ns()
        fields["msg"] = msg
        fields["created"] = created = ct / 1e9
        msecs = (ct % 1_000_000_000) // 1_000_000 + 0.0
        if msecs == 999.0 and int(created) != ct // 1_000_000_000:
            msecs = 0.0  # as LogRecord: the ns -> s conversion rounded up
        fields["msecs"] = msecs
        fields["relativeCreated"] = (ct - logging._startTime) / 1e6
        if switched:  # thread, process and task as the switches say
            if logging.logThreads:
                fields["thread"] = threading.get_ident()
                fields["threadName"] = threading.current_thread().name
            else:
                fields["thread"] = fields["threadName"] = None
            fields["processName"] = _process_name() if logging.logMultiprocessing else None
            fields["process"] = os.getpid() if logging.logProcesses else None
            fields["taskName"] = _task_name() if logging.logAsyncioTasks else None
        record = _new(_LogRecord)
        record.__dict__ = fields
        return record


def _process_name() -> str:
    name = "MainProcess"
    mp = sys.modules.get("multiprocessing")
    if mp is not None:
        try:
            name = mp.current_process().name
        except Exception:  # as LogRecord
            pass
    return name


def _task_name() -> str | None:
    asyncio = sys.modules.get("asyncio")
    if asyncio:
        try:
            return asyncio.current_task().get_name()
        except Exception:  # as LogRecord: no loop, or no task
            pass
    return None
