"""The request log's record and line, made without makeRecord and JSONEncoder.encode, are the
standard library's: every LogRecord attribute and the JSON text are compared with its own."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time

import pytest

from function_app.telemetry import request_log
from function_app.telemetry.log_record import RecordMaker
from function_app.telemetry.request_log import RequestLog, RequestRecord, encode_line

SWITCHES = ("logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks")
NS = [1_765_000_000_123_456_789, 1_765_000_000_999_999_900, 1_765_000_001_000_000_000]


def _standard(logger: logging.Logger, msg: str) -> logging.LogRecord:
    return logger.makeRecord(logger.name, logging.INFO, request_log.__file__, 0, msg, None, None,
                             "write")


@pytest.mark.parametrize("flags", list(itertools.product((False, True), repeat=4)))
@pytest.mark.parametrize("ns", NS)
def test_a_made_record_has_every_attribute_of_the_standard_one(monkeypatch, flags, ns):
    for name, value in zip(SWITCHES, flags, strict=True):
        monkeypatch.setattr(logging, name, value)
    monkeypatch.setattr(time, "time_ns", lambda: ns)  # both read logging's `time.time_ns`
    logger = logging.getLogger("gateway.requests")
    maker = RecordMaker(logger, request_log.__file__, 0, "write")
    assert maker.usable()
    made, standard = maker.make('{"a":1}'), _standard(logger, '{"a":1}')
    assert type(made) is logging.LogRecord
    assert list(made.__dict__.items()) == list(standard.__dict__.items())
    assert made.getMessage() == standard.getMessage() == '{"a":1}'


async def test_a_record_made_in_a_task_names_the_task(monkeypatch):
    monkeypatch.setattr(logging, "logAsyncioTasks", True)
    logger = logging.getLogger("gateway.requests")
    maker = RecordMaker(logger, request_log.__file__, 0, "write")

    async def named():
        return maker.make("x").taskName, _standard(logger, "x").taskName

    made, standard = await asyncio.create_task(named(), name="request-7")
    assert made == standard == "request-7"


def test_another_record_factory_or_logger_class_gets_makeRecords_records(monkeypatch, caplog):
    """An instrumentation's factory (OpenTelemetry's logging one adds trace fields) still runs."""
    standard_factory = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = standard_factory(*args, **kwargs)
        record.otelTraceID = "0af7651916cd43dd8448eb211c80319c"
        return record

    log = RequestLog()
    logging.setLogRecordFactory(factory)
    try:
        assert not log._records.usable()
        with caplog.at_level(logging.INFO, logger="gateway.requests"):
            log.write(_record())
    finally:
        logging.setLogRecordFactory(standard_factory)
    record, = [r for r in caplog.records if r.name == "gateway.requests"]
    assert record.otelTraceID == "0af7651916cd43dd8448eb211c80319c"

    class Custom(logging.Logger):
        def makeRecord(self, *args, **kwargs):
            record = super().makeRecord(*args, **kwargs)
            record.custom = True
            return record

    custom = Custom("gateway.requests.custom")
    assert not RecordMaker(custom, request_log.__file__, 0, "write").usable()
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append
    custom.addHandler(handler)
    custom.setLevel(logging.INFO)
    RequestLog(custom).write(_record())
    assert [getattr(r, "custom", False) for r in seen] == [True]


def _record(**changes) -> RequestRecord:
    fields = dict(request_id="r-1", trace_id="0af7651916cd43dd8448eb211c80319c", method="POST",
                  route="/infer/node", backend="node", model="none", status=200,
                  latency_ms=1.23456, client="c0ffee")
    fields.update(changes)
    return RequestRecord(**fields)


@pytest.mark.parametrize("fields", [
    {"request_id": "r", "status": 200, "latency_ms": 0.1 + 0.2, "tokens_in": 12},
    {"route": 'quote " back \\ slash \n newline é ☃ \x00 \ud83d', "ok": True, "none": False},
    {"latency_ms": 1e-7, "big": 10**30, "neg": -3, "f": float("inf"), "g": float("nan")},
    {},
])
def test_a_line_is_the_json_encoders_text(fields):
    assert encode_line(fields) == request_log._encode(fields)
    assert encode_line(fields) == json.dumps(fields, separators=(",", ":"))


def test_the_written_line_is_the_fields_as_before(caplog):
    record = _record(ttft_ms=12.3456, tokens_in=3, tokens_out=5, mcp_tool='to"ol')
    with caplog.at_level(logging.INFO, logger="gateway.requests"):
        RequestLog().write(record)
    line, = [r.getMessage() for r in caplog.records if r.name == "gateway.requests"]
    expected = {k: v for k, v in record.__dict__.items() if v is not None}
    expected.update(latency_ms=1.23, ttft_ms=12.35)
    assert line == json.dumps(expected, separators=(",", ":"))


NASTY = ['quote " back \\ slash', "new\nline\ttab\x00\x1f", "é ☃ 𝄞", "\ud83d lone", "", "-"]
BASE = ("request_id", "trace_id", "method", "route", "backend", "model", "status",
        "latency_ms", "client")


@pytest.mark.parametrize("text", NASTY)
@pytest.mark.parametrize("latency", [0.0, 1.23, 0.1 + 0.2, 1e-7, 123456789.12, 1e22, -0.0,
                                     float("inf"), float("-inf"), float("nan")])
def test_the_request_line_is_the_encoders_text_of_the_same_fields(text, latency):
    from function_app.telemetry.request_log import request_line

    values = ("r-" + text, "0af7651916cd43dd8448eb211c80319c", "POST" + text, "/r" + text,
              text, text, 429, latency, text)
    fields = dict(zip(BASE, values, strict=True))
    assert request_line(*values) == json.dumps(fields, separators=(",", ":"))
    optional = {"ttft_ms": latency, "tokens_in": 0, "cache": text, "mcp_tool": text}
    assert request_line(*values, optional) == json.dumps({**fields, **optional},
                                                         separators=(",", ":"))
    assert request_line(*values, {}) == request_line(*values)


# The direct path of RequestLog.write_line to the handlers is what `Logger.handle` of the
# standard record does: the same handlers get the same records, with every logging setting an
# operator may use (levels, filters on the logger or a handler, propagate, disabled loggers,
# a handler with its own handle, logging.disable, no handler at all).


class _Seen(logging.Handler):
    def __init__(self, seen: list, name: str, level: int = logging.NOTSET):
        super().__init__(level)
        self.name, self._seen = name, seen

    def emit(self, record: logging.LogRecord) -> None:
        self._seen.append((self.name, record.getMessage(), record.levelno, record.name,
                           record.pathname, record.lineno, record.funcName,
                           getattr(record, "tag", None)))


class _OwnHandle(_Seen):
    def handle(self, record):
        record.tag = "own-handle"
        return super().handle(record)


def _tagging(record):
    record.tag = "filtered"
    return True


def _replacing(record):
    copy = logging.makeLogRecord(record.__dict__)
    copy.msg = "replaced"
    return copy


SETUPS = {
    "child and parent handlers": lambda lg, pa, seen: (
        lg.addHandler(_Seen(seen, "child")), pa.addHandler(_Seen(seen, "parent"))),
    "a handler above INFO is skipped": lambda lg, pa, seen: (
        lg.addHandler(_Seen(seen, "warn", logging.WARNING)), pa.addHandler(_Seen(seen, "p"))),
    "no propagation": lambda lg, pa, seen: (
        lg.addHandler(_Seen(seen, "child")), pa.addHandler(_Seen(seen, "parent")),
        setattr(lg, "propagate", False)),
    "a handler's filter refuses": lambda lg, pa, seen: (
        lg.addHandler(h := _Seen(seen, "refused")), h.addFilter(lambda r: False),
        pa.addHandler(_Seen(seen, "parent"))),
    "a handler's filter tags": lambda lg, pa, seen: (
        lg.addHandler(h := _Seen(seen, "tagged")), h.addFilter(_tagging)),
    "a handler's filter replaces the record": lambda lg, pa, seen: (
        pa.addHandler(h := _Seen(seen, "replaced")), h.addFilter(_replacing)),
    "the logger's filter refuses": lambda lg, pa, seen: (
        lg.addHandler(_Seen(seen, "child")), lg.addFilter(lambda r: False)),
    "the logger's filter replaces the record": lambda lg, pa, seen: (
        lg.addHandler(_Seen(seen, "child")), lg.addFilter(_replacing)),
    "a parent's filter does not apply": lambda lg, pa, seen: (
        pa.addHandler(_Seen(seen, "parent")), pa.addFilter(lambda r: False)),
    "a handler with its own handle": lambda lg, pa, seen: lg.addHandler(_OwnHandle(seen, "own")),
    "the logger above INFO": lambda lg, pa, seen: (
        lg.addHandler(_Seen(seen, "child")), lg.setLevel(logging.WARNING)),
    "the logger disabled": lambda lg, pa, seen: (
        lg.addHandler(_Seen(seen, "child")), setattr(lg, "disabled", True)),
    "no handler anywhere": lambda lg, pa, seen: None,
}


def _loggers(name: str) -> tuple[logging.Logger, logging.Logger]:
    """A logger and its parent outside the global hierarchy (the root's handlers stay out)."""
    parent, logger = logging.Logger(f"{name}.p"), logging.Logger(f"{name}.p.c")
    logger.parent = parent
    parent.setLevel(logging.INFO)
    return logger, parent


def _standard_write(logger: logging.Logger, line: str) -> None:
    """What the request log did through the standard library: makeRecord, then handle."""
    if logger.isEnabledFor(logging.INFO):
        logger.handle(_standard(logger, line))


@pytest.mark.parametrize("setup", SETUPS)
def test_the_direct_path_reaches_the_handlers_logger_handle_reaches(setup):
    seen: dict[str, list] = {"direct": [], "standard": []}
    for way in seen:
        logger, parent = _loggers("tdirect")  # each way its own pair, outside the hierarchy
        SETUPS[setup](logger, parent, seen[way])
        log = RequestLog(logger)
        if way == "direct":
            assert log._plain_logger  # the direct path is the one taken
            log.write_line('{"x":1}')
            log.write_line('{"x":2}')
        else:
            _standard_write(logger, '{"x":1}')
            _standard_write(logger, '{"x":2}')
    assert seen["direct"] == seen["standard"]


def test_logging_disable_and_a_changed_level_apply_to_the_next_line():
    seen: list = []
    logger = logging.getLogger("gateway.requests.test-disable")  # in the hierarchy: its cache
    logger.propagate = False  # of isEnabledFor is emptied by the logging module's changes
    logger.setLevel(logging.INFO)
    logger.addHandler(handler := _Seen(seen, "child"))
    log = RequestLog(logger)
    try:
        log.write_line("1")
        logging.disable(logging.INFO)
        try:
            log.write_line("2")
        finally:
            logging.disable(logging.NOTSET)
        log.write_line("3")
        logging.getLogger("gateway.requests").setLevel(logging.WARNING)  # an ancestor's level
        logger.setLevel(logging.NOTSET)  # ... now decides
        log.write_line("4")
    finally:
        logging.getLogger("gateway.requests").setLevel(logging.NOTSET)
        logger.removeHandler(handler)
    assert [s[1] for s in seen] == ["1", "3"]


def test_the_request_loggers_line_reaches_the_root_handlers(caplog):
    with caplog.at_level(logging.INFO, logger="gateway.requests"):
        RequestLog().write_line('{"a":"b"}')
    record, = [r for r in caplog.records if r.name == "gateway.requests"]
    standard = _standard(logging.getLogger("gateway.requests"), '{"a":"b"}')
    assert (record.getMessage(), record.funcName, record.pathname, record.lineno) == (
        standard.getMessage(), standard.funcName, standard.pathname, standard.lineno)


def test_a_logger_class_with_its_own_handle_takes_the_standard_path():
    seen: list = []

    class Counting(logging.Logger):
        def handle(self, record):
            record.tag = "logger-handle"
            super().handle(record)

    logger = Counting("tcounting")
    logger.setLevel(logging.INFO)
    logger.addHandler(_Seen(seen, "h"))
    log = RequestLog(logger)
    assert not log._plain_logger
    log.write_line("x")
    assert [s[-1] for s in seen] == ["logger-handle"]


def test_the_quoted_texts_kept_are_bounded_and_the_line_still_the_encoders():
    from function_app.telemetry.request_log import _QUOTES_KEPT, _quoted, request_line

    for n in range(_QUOTES_KEPT + 10):
        method = f'M"{n}\\'
        fields = dict(zip(BASE, ("r", "", method, "/", "b", "m", 200, 1.5, "c"), strict=True))
        assert request_line(*fields.values()) == json.dumps(fields, separators=(",", ":"))
        assert request_line(*fields.values()) == json.dumps(fields, separators=(",", ":"))
    assert len(_quoted) <= _QUOTES_KEPT
    long = "G" * 5000 + '"'
    fields = dict(zip(BASE, ("r", "", long, "/", "b", "m", 200, 1.5, "c"), strict=True))
    assert request_line(*fields.values()) == json.dumps(fields, separators=(",", ":"))
    assert long not in _quoted  # quoted, not kept


# RequestLog.write_request: Telemetry.finish's call, the line request_line makes of the same
# fields (latency in seconds, rounded here; the trace id's hex text), written as write_line does.


LATENCIES_S = [0.0, -0.0, 1e-9, 4.9999e-6, 5e-6, 5.0001e-6, 0.00123456, 0.0012, 0.1 + 0.2,
               0.999995, 1.0, 12.3456789, 999_999.99999, 1e6 - 1e-9, 1e6, 123456.789, 1e19,
               -1.5, float("inf"), float("-inf"), float("nan")]


def test_the_latency_text_is_the_rounded_floats_repr():
    import random

    from function_app.telemetry.request_log import latency_text

    rng = random.Random(5)
    values = [ms for s in LATENCIES_S for ms in (s * 1000,)]
    values += [rng.uniform(0, 10) for _ in range(20_000)]
    values += [rng.uniform(0, 1e9) for _ in range(20_000)]
    values += [rng.randrange(0, 10**11) / 100 for _ in range(20_000)]  # two places exactly
    values += [n / 1000 + 0.005 for n in range(0, 100_000, 7)]  # ties, as written
    values += [10 ** rng.uniform(-12, 9) for _ in range(20_000)]
    for ms in values:
        assert latency_text(ms) == repr(round(ms, 2)), ms


@pytest.mark.parametrize("seconds", LATENCIES_S)
@pytest.mark.parametrize("trace", ["0af7651916cd43dd8448eb211c80319c", f"{1:032x}", ""])
@pytest.mark.parametrize("optional", [None, {}, {"ttft_ms": 1.5, "cache": 'h"it'}])
def test_write_request_writes_request_lines_line(seconds, trace, optional):
    from function_app.telemetry.request_log import request_line

    logger, _ = _loggers("twrite")
    seen: list = []
    logger.addHandler(_Seen(seen, "child"))
    RequestLog(logger).write_request("r-1", trace, "POST", "/infer/node", "node", "-", 200,
                                     seconds, "c0ffee", optional)
    expected = request_line("r-1", trace, "POST", "/infer/node", "node", "-", 200,
                            round(seconds * 1000, 2), "c0ffee", optional)
    assert [s[1] for s in seen] == [expected]


@pytest.mark.parametrize("flags", list(itertools.product((False, True), repeat=4)))
def test_write_request_records_are_the_standard_ones(monkeypatch, flags):
    for name, value in zip(SWITCHES, flags, strict=True):
        monkeypatch.setattr(logging, name, value)
    monkeypatch.setattr(time, "time_ns", lambda: NS[1])
    logger, _ = _loggers("twrite-record")
    records: list = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    RequestLog(logger).write_request("r", "", "GET", "/", "b", "m", 200, 0.5, "c")
    (made,) = records
    standard = _standard(logger, made.msg)
    assert list(made.__dict__.items()) == list(standard.__dict__.items())


@pytest.mark.parametrize("setup", SETUPS)
def test_write_request_reaches_the_handlers_logger_handle_reaches(setup):
    seen: dict[str, list] = {"direct": [], "standard": []}
    line = '{"request_id":"r","trace_id":"","method":"GET","route":"/","backend":"b",' \
        '"model":"m","status":200,"latency_ms":1.5,"client":"c"}'
    for way in seen:
        logger, parent = _loggers("twrite-direct")
        SETUPS[setup](logger, parent, seen[way])
        if way == "direct":
            RequestLog(logger).write_request("r", "", "GET", "/", "b", "m", 200, 0.0015, "c")
        else:
            _standard_write(logger, line)
    assert seen["direct"] == seen["standard"]


def test_write_request_with_another_factory_or_logger_class_takes_the_standard_path(caplog):
    standard_factory = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = standard_factory(*args, **kwargs)
        record.tagged = True
        return record

    logging.setLogRecordFactory(factory)
    try:
        with caplog.at_level(logging.INFO, logger="gateway.requests"):
            RequestLog().write_request("r", f"{0xAB:032x}", "GET", "/", "b", "m", 200, 0.0015,
                                       "c")
    finally:
        logging.setLogRecordFactory(standard_factory)
    record, = [r for r in caplog.records if r.name == "gateway.requests"]
    assert record.tagged and json.loads(record.getMessage())["trace_id"] == f"{0xAB:032x}"
    assert json.loads(record.getMessage())["latency_ms"] == 1.5


def test_write_requests_latency_is_latency_texts_for_many_values():
    """write_request's copy of latency_text's short path writes the same text."""
    import random

    from function_app.telemetry.request_log import latency_text

    logger, _ = _loggers("twrite-many")
    seen: list = []
    logger.addHandler(_Seen(seen, "child"))
    log = RequestLog(logger)
    rng = random.Random(9)
    values = [rng.uniform(0, 2) for _ in range(1000)] + [10 ** rng.uniform(-9, 7)
                                                         for _ in range(1000)]
    for seconds in values:
        log.write_request("r", "", "GET", "/", "b", "m", 200, seconds, "c")
    texts = [json.loads(s[1], parse_float=str)["latency_ms"] for s in seen]
    assert texts == [latency_text(seconds * 1000) for seconds in values]


def test_the_label_texts_kept_are_bounded_and_the_line_still_request_lines():
    """write_request's label-set text (method to latency_ms, kept per label set) gives
    request_line's line for texts that need escaping, every status, past the table's bound;
    a long method is written, not kept."""
    from function_app.telemetry.request_log import _LABELS_KEPT, _label_texts, request_line

    logger, _ = _loggers("twrite-labels")
    seen: list = []
    logger.addHandler(_Seen(seen, "child"))
    log = RequestLog(logger)
    expected = []
    for n in range(_LABELS_KEPT + 20):
        method, route, model = f'M"{n % 7}\\', f"/r/\u00e9{n % 3}", f"m\n{n % 5}"
        status = 100 + n % 500
        for _ in range(2):  # made, then read from the table
            log.write_request("r", "ab" * 16, method, route, "b", model, status, 0.0125, "c")
            expected.append(request_line("r", "ab" * 16, method, route, "b", model, status,
                                         12.5, "c"))
    assert [s[1] for s in seen] == expected
    assert len(_label_texts) <= _LABELS_KEPT
    long = "G" * 5000
    log.write_request("r", "", long, "/", "b", "m", 200, 0.001, "c")
    assert json.loads(seen[-1][1])["method"] == long
    assert not any(long in key for key in _label_texts)
