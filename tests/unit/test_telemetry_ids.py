"""The id-only tracer's short paths (root, child, the attempt spans made straight from the
request span's ids) give the same span contexts as the OpenTelemetry constructors and the
tracer's own start_span, and the backend sees the request span's trace in its traceparent."""

from __future__ import annotations

import random
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from function_app.core.upstream import UpstreamRequest, UpstreamResponse
from function_app.http.headers import Headers
from function_app.http.messages import GatewayRequest
from function_app.telemetry.ids import IdOnlyTracer
from function_app.telemetry.tracing import attempt_observer, start_request_span, traceparent

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _seeded(seed: int) -> IdOnlyTracer:
    tracer = IdOnlyTracer()
    tracer._bits = random.Random(seed).getrandbits
    return tracer


def test_root_and_child_contexts_are_what_the_constructor_makes():
    for seed in range(50):
        root = _seeded(seed).root().get_span_context()
        bits = random.Random(seed).getrandbits
        span_id = bits(64) or 1
        assert tuple(root) == tuple(SpanContext(bits(128) or 1, span_id, False, TraceFlags(0)))
        assert type(root) is SpanContext and root.is_valid and not root.is_remote
    state = TraceState([("vendor", "v1")])
    child = _seeded(7).child(0xABC, TraceFlags(1), state).get_span_context()
    assert tuple(child) == tuple(SpanContext(0xABC, random.Random(7).getrandbits(64) or 1,
                                             False, TraceFlags(1), state))


def test_start_span_gives_the_same_spans_as_root_and_child():
    assert tuple(_seeded(3).start_span("GET").get_span_context()) == \
        tuple(_seeded(3).root().get_span_context())
    parent = NonRecordingSpan(SpanContext(0xABC, 0xDEF, True, TraceFlags(1)))
    assert tuple(_seeded(3).start_span(
        "GET", context=trace.set_span_in_context(parent)).get_span_context()) == \
        tuple(_seeded(3).child(0xABC, TraceFlags(1), parent.get_span_context().trace_state)
              .get_span_context())


def _request(headers: list[tuple[str, str]]) -> GatewayRequest:
    return GatewayRequest(method="POST", path="/infer/node", query="", headers=Headers(headers),
                          body=b"", client_host="127.0.0.1")


async def _attempt_traceparent(tracer, request_span) -> tuple[str, list[tuple]]:
    done: list[tuple] = []
    observe = attempt_observer(tracer, request_span, lambda url: "node",
                               lambda *args: done.append(args[:2]))
    outgoing = UpstreamRequest("POST", "http://127.0.0.1:1/x", Headers(
        [("traceparent", CALLER), ("tracestate", "client=1")]), b"", 1.0, 1.0)

    async def send(request: UpstreamRequest) -> UpstreamResponse:
        return UpstreamResponse(200, Headers([("content-length", "0")]), _empty())

    await observe(outgoing, send)
    return outgoing.headers.get_all("traceparent"), done


async def _empty():
    return
    yield


async def test_the_backend_sees_the_callers_trace_through_the_request_span():
    tracer = IdOnlyTracer()
    span = start_request_span(tracer, _request([("traceparent", CALLER)]))
    trace_id, _, _, flags, _, _ = span.get_span_context()
    assert (trace_id, flags) == (0x0AF7651916CD43DD8448EB211C80319C, 1)
    sent, done = await _attempt_traceparent(tracer, span)
    sent_trace, sent_span, sent_flags = sent[0][3:35], sent[0][36:52], sent[0][53:]
    assert (sent_trace, sent_flags) == ("0af7651916cd43dd8448eb211c80319c", "01")
    assert sent_span != f"{span.get_span_context().span_id:016x}"  # the attempt's own span
    assert done == [("node", "2xx")]


async def test_without_a_caller_the_attempt_continues_the_request_spans_new_trace():
    tracer = IdOnlyTracer()
    span = start_request_span(tracer, _request([]))
    assert span.get_span_context().is_valid and not span.is_recording()
    sent, _ = await _attempt_traceparent(tracer, span)
    assert sent[0][:36] == traceparent(span)[:36] and sent[0].endswith("-00")


def test_the_spans_are_what_the_constructor_makes_of_their_context():
    from function_app.telemetry import ids

    assert ids._PLAIN_SPAN  # the pinned API: spans are made without its __init__
    tracer = _seeded(11)
    for span in (tracer.root(), tracer.child(0xABC, TraceFlags(1), TraceState([("v", "1")]))):
        made = NonRecordingSpan(span.get_span_context())
        assert type(span) is NonRecordingSpan and vars(span) == vars(made)
        assert not span.is_recording() and span.get_span_context() is made.get_span_context()


# request_span_and_observer: the telemetry stage's one call a request. Without a caller's trace
# and with the id-only tracer it makes the root span and the attempts' headers itself; the
# same seed gives the same ids, headers and reports as start_request_span + attempt_observer.


async def _attempts(observe, answers: list) -> list[list[tuple[str, str]]]:
    """The headers each attempt sent (the client's trace headers replaced)."""
    sent = []
    for answer in answers:
        outgoing = UpstreamRequest("POST", "http://127.0.0.1:1/x", Headers(
            [("traceparent", CALLER), ("TraceState", "client=1"), ("x-keep", "1")]), b"",
            1.0, 1.0)

        async def send(request, answer=answer):
            if isinstance(answer, BaseException):
                raise answer
            return answer()

        try:
            await observe(outgoing, send)
        except BaseException:
            pass
        sent.append(outgoing.headers.pairs())
    return sent


def _answers():
    from function_app.core.errors import UpstreamTimeout

    return [lambda: UpstreamResponse(503, Headers([("content-length", "0")]), _empty()),
            UpstreamTimeout("late"),
            lambda: UpstreamResponse(200, Headers([("content-length", "2")]), _empty())]


def _reports() -> tuple[list[tuple], Callable]:
    """What the observer's `done` was told (backend, outcome), and that `done`."""
    told: list[tuple] = []
    return told, lambda *args: told.append(args[:2])


async def test_one_call_gives_the_root_span_and_attempts_of_the_two_functions(monkeypatch):
    from function_app.telemetry import tracing
    from function_app.telemetry.tracing import request_span_and_observer

    for seed in range(20):
        done_new, report_new = _reports()
        done_old, report_old = _reports()
        with monkeypatch.context() as patched:  # the short path is the one taken
            patched.setattr(tracing, "start_request_span", None)
            patched.setattr(tracing, "attempt_observer", None)
            span, observe, text = request_span_and_observer(
                _seeded(seed), _request([]), lambda url: "node",
                report_new)
        old_tracer = _seeded(seed)
        old_span = start_request_span(old_tracer, _request([]))
        old_observe = attempt_observer(old_tracer, old_span, lambda url: "node",
                                       report_old)
        assert type(span) is NonRecordingSpan and not span.is_recording()
        assert tuple(span.get_span_context()) == tuple(old_span.get_span_context())
        assert text == tracing.trace_id(old_span)  # the request log's text, formatted once
        # The same fields and values (the short path sets its traceparent in the place of one
        # already there instead of removing it and adding it at the end).
        new_sent = await _attempts(observe, _answers())
        assert [dict(h) for h in new_sent] == [
            dict(h) for h in await _attempts(old_observe, _answers())]
        assert all(len({name for name, _ in h}) == len(h) and "tracestate" not in dict(h)
                   for h in new_sent)  # one traceparent each, no tracestate
        assert done_new == done_old == [("node", "5xx"), ("node", "upstream_timeout"),
                                        ("node", "2xx")]


async def test_a_streamed_attempt_reports_when_its_body_ends():
    from function_app.telemetry.tracing import request_span_and_observer

    done: list[tuple] = []
    _, observe, _ = request_span_and_observer(IdOnlyTracer(), _request([]), lambda url: "node",
                                              lambda *args: done.append(args[:2]))

    async def chunks():
        yield b"a"
        yield b"b"

    async def send(request):
        return UpstreamResponse(200, Headers([("content-type", "text/event-stream")]), chunks())

    answer = await observe(UpstreamRequest("POST", "http://b/x", Headers(), b"", 1.0, 1.0),
                           send)
    assert done == []
    assert [chunk async for chunk in answer.body] == [b"a", b"b"]
    assert done == [("node", "2xx")]


async def test_a_caller_trace_or_another_tracer_goes_through_the_two_functions():
    from function_app.telemetry.tracing import request_span_and_observer

    span, observe, text = request_span_and_observer(
        IdOnlyTracer(), _request([("traceparent", CALLER)]), lambda url: "node",
        lambda *args: None)
    assert text is None  # finish reads it from the span
    assert span.get_span_context().trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    (sent,) = await _attempts(observe, _answers()[2:])
    assert dict(sent)["traceparent"][3:35] == "0af7651916cd43dd8448eb211c80319c"

    class Subclass(IdOnlyTracer):
        def root(self):  # a subclass may change what its spans are: its own methods run
            return NonRecordingSpan(SpanContext(0xAB, 0xCD, False, TraceFlags(1)))

    span, observe, text = request_span_and_observer(Subclass(), _request([]),
                                                    lambda url: "node", lambda *args: None)
    assert text is None
    assert span.get_span_context().trace_id == 0xAB
    (sent,) = await _attempts(observe, _answers()[2:])
    assert dict(sent)["traceparent"].startswith(f"00-{0xAB:032x}-") and \
        dict(sent)["traceparent"].endswith("-01")


async def test_an_attempt_whose_body_has_end_hooks_reports_from_them():
    """A body with `on_end` (DeadlineBody's) is not wrapped: the attempt is reported from its
    hook, with or without an error."""
    from function_app.core.errors import UpstreamError
    from function_app.telemetry.tracing import request_span_and_observer

    class Hooked:
        def __init__(self):
            self.hooks = []

        def on_end(self, hook):
            self.hooks.append(hook)

        def __aiter__(self):
            return self

        async def __anext__(self):
            raise StopAsyncIteration

    for error in (None, UpstreamError()):
        done, report = _reports()
        _, observe, _ = request_span_and_observer(IdOnlyTracer(), _request([]),
                                                  lambda url: "node", report)
        body = Hooked()

        async def send(request, body=body):
            return UpstreamResponse(200, Headers([("content-type", "text/event-stream")]), body)

        answer = await observe(UpstreamRequest("POST", "http://b/x", Headers(), b"", 1.0, 1.0),
                               send)
        assert answer.body is body and len(body.hooks) == 1 and done == []
        body.hooks[0](error)
        assert done == [("node", "2xx")]
