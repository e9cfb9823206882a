"""One JSON line per request on the logger `gateway.requests`.

Only what identifies and measures the exchange: ids, route, backend, model, status, timings,
token counts and the hashed client. Never a key, an Authorization value, a prompt or a
completion: the line is built from the fields below only, never from headers or bodies.
"""

from __future__ import annotations

import json
import json.encoder
import logging
from dataclasses import dataclass

from .log_record import RecordMaker

LOGGER = "gateway.requests"
_encoder = json.JSONEncoder(separators=(",", ":"))
_encode = _encoder.encode  # dumps() builds an encoder per call


def _c_encoder():
    """What `_encoder.encode` runs for a dict, made once: encode() builds this C encoder on every
    call (with the circular-reference markers, which a flat dict of str, int and float values
    never needs). None where the C accelerator is missing."""
    make = json.encoder.c_make_encoder
    if make is None:  # pragma: no cover - CPython has it
        return None
    e = _encoder
    return make(None, e.default, json.encoder.encode_basestring_ascii, e.indent, e.key_separator,
                e.item_separator, e.sort_keys, e.skipkeys, e.allow_nan)


_C_ENCODE = _c_encoder()


def encode_line(fields: dict) -> str:
    """`fields` as the JSON text `_encode` makes (the same bytes), for a flat dict of str, int,
    float and bool values."""
    if _C_ENCODE is None:  # pragma: no cover
        return _encode(fields)
    return "".join(_C_ENCODE(fields, 0))


_ascii = json.encoder.encode_basestring_ascii  # what the encoder quotes each str with
# The trace id is hex digits or "" (trace_id()'s text), which the encoder writes as it is
# between quotes: the template quotes it itself, a call less.
_FIRST = ('{"request_id":%s,"trace_id":"%s","method":%s,"route":%s,"backend":%s,"model":%s,'
          '"status":%d,"latency_ms":%r,"client":%s}')
_FINITE = 1.8e308  # above the largest float: a value inside (-_FINITE, _FINITE) is finite
_QUOTES_KEPT = 512  # texts, of at most _QUOTED_LENGTH characters each
_QUOTED_LENGTH = 128


class _Quoted(dict):
    """Text -> the encoder's quoted text, for the fields whose values repeat (method, route,
    backend, model, client: a subscript where each was a call). The method and the client are
    the client's: the table is emptied when full, and a long text is quoted, not kept."""

    def __missing__(self, text: str) -> str:
        quoted = _ascii(text)
        if len(text) <= _QUOTED_LENGTH:
            if len(self) >= _QUOTES_KEPT:
                self.clear()
            self[text] = quoted
        return quoted


_quoted = _Quoted()


def request_line(request_id: str, trace_id: str, method: str, route: str, backend: str,
                 model: str, status: int, latency_ms: float, client: str,
                 optional: dict | None = None) -> str:
    """The line `encode_line` makes of RequestRecord's nine fields that are never None, in its
    order (`latency_ms` already rounded; `trace_id` hex digits or "", as `trace_id()` gives
    it), followed by `optional`'s fields (those after them, in RequestRecord's order, None
    values left out), without building the dict: a template with each text quoted as the
    encoder does, the float as its repr (json's for a finite float; any other goes through
    the encoder, which writes Infinity or NaN)."""
    if not -_FINITE < latency_ms < _FINITE:
        return encode_line({"request_id": request_id, "trace_id": trace_id, "method": method,
                            "route": route, "backend": backend, "model": model,
                            "status": status, "latency_ms": latency_ms, "client": client,
                            **(optional or {})})
    q = _quoted
    line = _FIRST % (_ascii(request_id), trace_id, q[method], q[route], q[backend], q[model],
                     status, latency_ms, q[client])
    if optional:
        return line[:-1] + "," + encode_line(optional)[1:]
    return line


_TEXT_BELOW = 1e9  # milliseconds under which latency_text's short path is exact (see there)


def latency_text(ms: float) -> str:
    """`repr(round(ms, 2))`, the line's latency text, for a finite `ms`: from `"%.2f" % ms`
    with the trailing zeros after the point dropped (one left after it), a third of the time.
    Both round the exact binary value correctly to two decimals (the same dtoa), and for
    0 <= ms < 1e9 the rounded decimal has at most 11 significant digits, so it is the
    shortest text that reads back as round()'s float, which is what repr writes. Any other
    value goes through round() and repr."""
    if not 0.0 <= ms < _TEXT_BELOW:
        return repr(round(ms, 2))
    text = ("%.2f" % ms).rstrip("0")  # noqa: UP031
    return text + "0" if text[-1] == "." else text


_LABELS_KEPT = 512  # label sets (method, route, backend, model, status) kept


class _LabelTexts(dict):
    """(method, route, backend, model, status) -> the line's text between the trace id's
    digits and the latency's (`","method":"POST",...,"status":200,"latency_ms":`), as
    request_line's template writes it: one subscript where each field was quoted and formatted
    per line. The method is the client's: the table is emptied when full, and a long text is
    made, not kept."""

    def __missing__(self, key: tuple[str, str, str, str, int]) -> str:
        method, route, backend, model, status = key
        q = _quoted
        text = (f'","method":{q[method]},"route":{q[route]},"backend":{q[backend]},'
                f'"model":{q[model]},"status":{status:d},"latency_ms":')
        if len(text) <= 4 * _QUOTED_LENGTH:
            if len(self) >= _LABELS_KEPT:
                self.clear()
            self[key] = text
        return text


_label_texts = _LabelTexts()


@dataclass
class RequestRecord:
    request_id: str
    trace_id: str
    method: str
    route: str
    backend: str
    model: str
    status: int
    latency_ms: float
    client: str
    ttft_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    limited_by: str | None = None
    cache: str | None = None  # request.context.cache_status when a cache stage sets one
    stream_error: str | None = None
    # MCP routes: the server, JSON-RPC method, tool name and outcome; never the arguments.
    mcp_server: str | None = None
    mcp_method: str | None = None
    mcp_tool: str | None = None
    mcp_outcome: str | None = None


_Logger, _LogRecord = logging.Logger, logging.LogRecord
_INFO = logging.INFO
_HANDLER_HANDLE = logging.Handler.handle
_HAS_FACTORY = hasattr(logging, "_logRecordFactory")  # getLogRecordFactory() reads it


def _standard_logger(logger: logging.Logger) -> bool:
    """Whether `logger`'s class keeps the standard library's record path: the one the direct
    path in `RequestLog.write_line` does the work of (checked once: a logger keeps its class)."""
    cls = type(logger)
    return (_HAS_FACTORY and hasattr(logger, "_cache") and cls.makeRecord is _Logger.makeRecord
            and cls.isEnabledFor is _Logger.isEnabledFor and cls.handle is _Logger.handle
            and cls.callHandlers is _Logger.callHandlers)


class RequestLog:
    def __init__(self, logger: logging.Logger | None = None):
        self._log = logger or logging.getLogger(LOGGER)
        # The record as makeRecord would make it from the write below (log_record.py).
        self._records = RecordMaker(self._log, __file__, 0, "write")
        self._plain_logger = _standard_logger(self._log)

    def write(self, record: RequestRecord) -> None:
        fields = {k: v for k, v in record.__dict__.items() if v is not None}
        fields["latency_ms"] = round(record.latency_ms, 2)
        if record.ttft_ms is not None:
            fields["ttft_ms"] = round(record.ttft_ms, 2)
        self.write_fields(fields)

    def write_fields(self, fields: dict) -> None:
        """Write the line of `fields`: what `write` makes of a RequestRecord (its fields in its
        order, those that are None left out, the milliseconds rounded to two places)."""
        if self._log.isEnabledFor(logging.INFO):
            self.write_line(encode_line(fields))

    def write_request(self, request_id: str, trace_text: str, method: str, route: str,
                      backend: str, model: str, status: int, seconds: float, client: str,
                      optional: dict | None = None) -> None:
        """Write the line `request_line` makes of these fields (`trace_text` the trace id's hex
        digits, "" without a valid one; `seconds` the latency, rounded to milliseconds with two
        places here): Telemetry.finish's one call a request. The line is made only when it is
        written (the logger enabled for INFO), then goes as `write_line` sends it; the direct
        path below is write_line's, with the line joined from its parts: the quoted request
        id, the trace id's digits, the label set's text (`_LabelTexts`), latency_text's text
        and the quoted client."""
        log = self._log
        if not self._plain_logger or logging._logRecordFactory is not _LogRecord:
            if log.isEnabledFor(_INFO):
                self.write_line(request_line(
                    request_id, trace_text, method, route, backend, model, status,
                    round(seconds * 1000, 2), client, optional))
            return
        if log.disabled:
            return
        cache = log._cache
        if not (cache[_INFO] if _INFO in cache else log.isEnabledFor(_INFO)):
            return
        ms = seconds * 1000
        if 0.0 <= ms < _TEXT_BELOW:  # latency_text's short path; any other as request_line
            text = ("%.2f" % ms).rstrip("0")  # noqa: UP031
            line = "".join((
                '{"request_id":', _ascii(request_id), ',"trace_id":"', trace_text,
                _label_texts[method, route, backend, model, status],
                text + "0" if text[-1] == "." else text, ',"client":', _quoted[client],
                "," + encode_line(optional)[1:] if optional else "}"))
        else:
            line = request_line(request_id, trace_text, method, route, backend, model, status,
                                round(ms, 2), client, optional)
        self._emit(log, self._records.make(line))

    @staticmethod
    def _emit(log: logging.Logger, record: logging.LogRecord) -> None:
        """`record` to `log`'s handlers as `Logger.handle` would (write_line's docstring says
        how): the one dispatch both writers share."""
        if log.filters:
            log.handle(record)
            return
        found = False
        logger = log
        while logger is not None:
            handlers = logger.handlers
            if handlers:
                found = True
                for handler in handlers:
                    if _INFO >= handler.level:
                        if handler.filters or type(handler).handle is not _HANDLER_HANDLE:
                            handler.handle(record)
                        else:
                            with handler.lock:
                                handler.emit(record)
            logger = logger.parent if logger.propagate else None
        if not found:
            log.callHandlers(record)

    def write_line(self, line: str) -> None:
        """Write `line` (request_line's, made by Telemetry.finish once a request).

        What `logger.info(line)` does, to the same handlers with the same checks, written out
        for the standard logger and record factory (`logging.Logger.handle` and the calls
        under it were about ten a request): the level check from the logger's own cache of
        isEnabledFor; the record from RecordMaker (makeRecord's, without the stack walk that
        finds the caller: the caller is always this line); the logger's filters, if it has
        any, through `Logger.handle` as before; else the handlers of the logger and of its
        ancestors while they propagate, each at or below INFO, through `Handler.handle` when
        it has filters or its own `handle`, else its `emit` under its lock, which is what
        `Handler.handle` does then; no handler at all goes through `callHandlers` (the
        last-resort handler). tests/unit/test_request_log_record.py compares each case with
        `logger.info`."""
        log = self._log
        if not self._plain_logger or logging._logRecordFactory is not _LogRecord:
            if log.isEnabledFor(_INFO):
                log.handle(log.makeRecord(log.name, _INFO, __file__, 0, line, None, None,
                                          "write"))
            return
        if log.disabled:
            return
        cache = log._cache  # isEnabledFor's: emptied by the logging module on any level change
        if not (cache[_INFO] if _INFO in cache else log.isEnabledFor(_INFO)):
            return
        self._emit(log, self._records.make(line))
