"""Spans: one per request, one CLIENT span per upstream attempt, W3C trace context both ways.

The request span continues the caller's `traceparent`. Under the Azure Functions worker with
PYTHON_ENABLE_OPENTELEMETRY, the worker has already made the host's invocation span current: the
host records the request (Application Insights `requests`), so the gateway's span becomes an
INTERNAL child of it instead of a second SERVER span, and no request is counted twice.

Spans are handed on explicitly (request context, closures), never attached as the current context:
the body of a streamed answer is sent from another task than the one that started the request.
Attribute names follow the OpenTelemetry HTTP and GenAI semantic conventions.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from ..core.errors import GatewayError
from ..core.upstream import UpstreamRequest, UpstreamResponse
from ..http.messages import GatewayRequest
from ..routing.attempts import Observer, Send
from .ids import PLAIN_SPAN, UNSAMPLED, IdOnlyTracer

PROPAGATOR = TraceContextTextMapPropagator()
TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
_TRACE_NAMES = tuple(TRACE_HEADERS)  # remove(*a tuple) passes it as is: no tuple made per call
AttemptDone = Callable[[str, str, float], None]  # backend, outcome, seconds


# A SpanContext is a typed tuple (trace_id, span_id, is_remote, trace_flags, trace_state,
# is_valid); reading it by unpacking spares a property call per field, several per span.


def _current_context_var() -> ContextVar | None:
    """The ContextVar that holds OpenTelemetry's current Context, when the runtime context is
    the API's default (contextvars); None for any other, which is read through the API."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    if type(runtime) is not ContextVarsRuntimeContext:
        return None
    var = getattr(runtime, "_current_context", None)
    return var if isinstance(var, ContextVar) else None


_RUNTIME = getattr(otel_context, "_RUNTIME_CONTEXT", None)
_CURRENT = _current_context_var()


def start_request_span(tracer: Tracer, request: GatewayRequest) -> Span:
    # An empty current context has no span: one ContextVar read tells, where the API's
    # get_current_span takes five calls (outside the worker's OpenTelemetry mode, every request).
    if _CURRENT is not None and otel_context._RUNTIME_CONTEXT is _RUNTIME \
            and not _CURRENT.get():
        current = None
    else:
        current = trace.get_current_span()
    if current is not None and current.get_span_context()[5]:  # is_valid
        parent, kind = trace.set_span_in_context(current), SpanKind.INTERNAL
    else:
        if (type(tracer) is IdOnlyTracer or isinstance(tracer, IdOnlyTracer)) \
                and "traceparent" not in request.headers:
            # What its start_span makes here (a tracestate alone continues nothing).
            return tracer.root()
        carrier = {k: v for k in TRACE_HEADERS if (v := request.headers.get(k)) is not None}
        # No parent of ours: a real tracer starts from the current context (None), which its
        # span processors see.
        parent = PROPAGATOR.extract(carrier) if carrier else None
        kind = SpanKind.SERVER
    span = tracer.start_span(request.method, context=parent, kind=kind)
    if span.is_recording():  # attributes cost time; an unsampled span drops them anyway
        span.set_attributes({"http.request.method": request.method, "url.path": request.path,
                             "url.scheme": request.scheme,
                             "gateway.request_id": request.request_id})
    return span


def request_span_and_observer(tracer: Tracer, request: GatewayRequest,
                              backend_of: Callable[[str], str], done: AttemptDone
                              ) -> tuple[Span, Observer, str | None]:
    """`start_request_span(tracer, request)` and `attempt_observer(tracer, span, backend_of,
    done)` in one call: the telemetry stage's per-request start. The third value is the trace
    id's hex digits when made here (formatted once, for the attempts' `traceparent` and the
    request log), else None.

    The usual case when no trace is exported (the id-only tracer, no current span, no
    `traceparent` from the client) is made here directly. One draw of 256 bits is the root
    span's id, its trace id and the first attempt's span id, lowest first: the very numbers
    root() then child() drew (getrandbits fills a wide draw with the generator's 32-bit words
    lowest first). The observer sends the same headers and reports the same attempts as
    attempt_observer's for that root, without making the attempt spans, which would record
    nothing: each attempt's `traceparent` names a new span id of the root's trace (flags 0, no
    trace state), the first the one drawn here, later ones drawn as child() draws them. Any
    other case goes through the two functions."""
    if type(tracer) is not IdOnlyTracer or not _SHORT \
            or otel_context._RUNTIME_CONTEXT is not _RUNTIME or _CURRENT.get() \
            or "traceparent" in request.headers:
        span = start_request_span(tracer, request)
        return span, attempt_observer(tracer, span, backend_of, done), None
    draw = tracer._bits
    bits = draw(256)
    trace_id = (bits >> 64) & _LOW128 or 1
    span = _new(NonRecordingSpan)
    span._context = _span_context(SpanContext, (
        trace_id, bits & _LOW64 or 1, False, UNSAMPLED, DEFAULT_TRACE_STATE, True))
    span_id = bits >> 192 or 1
    trace_text = "%032x" % trace_id  # noqa: UP031

    async def observe(outgoing: UpstreamRequest, send: Send) -> UpstreamResponse:
        nonlocal span_id
        backend = backend_of(outgoing.url)
        headers = outgoing.headers
        # The client sent no traceparent (the short path's condition): the attempt's replaces
        # any a previous attempt set, and a client's tracestate goes.
        headers.remove("tracestate")
        headers.set("traceparent", "00-%s-%016x-00" % (  # noqa: UP031
            trace_text, span_id or draw(64) or 1))
        span_id = 0  # a later attempt draws its own
        started = time.perf_counter()
        try:
            answer = await send(outgoing)
        except GatewayError as error:
            done(backend, error.code, time.perf_counter() - started)
            raise
        status = answer.status
        outcome = _OUTCOMES[status] if status in _OUTCOMES else f"{status // 100}xx"
        if "content-length" in answer.headers:
            done(backend, outcome, time.perf_counter() - started)
        else:
            answer.body = _ending(answer.body, _NOT_RECORDING, lambda: done(
                backend, outcome, time.perf_counter() - started))
        return answer

    return span, observe, trace_text


# The short path's conditions that hold for the process: the API's span and context classes.
_SHORT = PLAIN_SPAN is not None and _CURRENT is not None
# An attempt's outcome for each status code ("2xx"...): a look-up where it was formatted.
_OUTCOMES = {status: f"{status // 100}xx" for status in range(100, 600)}
_new = object.__new__
_span_context = tuple.__new__  # SpanContext(...) minus its checks: the ids made here are valid
_LOW64 = (1 << 64) - 1
_LOW128 = (1 << 128) - 1
_NOT_RECORDING = NonRecordingSpan(INVALID_SPAN_CONTEXT)  # ignores every call, as an attempt's


_EMPTY = Context()


def _no_parent(tracer: Tracer) -> Context | None:
    """The context a span with no parent of ours starts from: the current one (None) for a
    real tracer, whose span processors see it; for the id-only tracer, which has none and only
    reads the parent span, an empty one (looking the current context up again costs frames)."""
    return _EMPTY if isinstance(tracer, IdOnlyTracer) else None


def traceparent(span: Span) -> str:
    """The W3C `traceparent` value naming `span` as the parent (formatted directly: the
    propagator's generic path costs several times more, once per attempt)."""
    return _traceparent(span.get_span_context())


# Hex by %-formatting (noqa UP031): the same text as f"{n:032x}" for these non-negative ints in
# about half the time (a format spec goes through int.__format__), twice a request.


def _traceparent(ctx: SpanContext) -> str:
    trace_id, span_id, _, flags, _, _ = ctx
    return "00-%032x-%016x-%02x" % (trace_id, span_id, flags)  # noqa: UP031


def trace_ids(span: Span) -> tuple[str, str]:
    """(trace id, span id) in hex, or empty strings when there is no valid context."""
    trace_id, span_id, _, _, _, valid = span.get_span_context()
    if not valid:
        return "", ""
    return f"{trace_id:032x}", f"{span_id:016x}"


def trace_id(span: Span) -> str:
    """The trace id in hex (the request log's), or "" when there is no valid context."""
    trace_id, _, _, _, _, valid = span._context if type(span) is PLAIN_SPAN \
        else span.get_span_context()
    return "%032x" % trace_id if valid else ""  # noqa: UP031


def attempt_observer(tracer: Tracer, parent: Span, backend_of: Callable[[str], str],
                     done: AttemptDone) -> Observer:
    """The per-attempt hook for one request: a CLIENT span child of `parent`, the trace context
    injected into the outgoing headers (replacing any the client sent), and `done` called once
    per attempt with its outcome ("2xx"... or an error code): when a streamed body has ended,
    or at the headers of an answer with a Content-Length."""
    # How the attempts' CLIENT spans are made: for the id-only tracer, straight from the
    # parent's ids (IdOnlyTracer.child(*ids): what its start_span does with that parent); for a
    # real tracer, by its start_span with the parent in a Context, as its span processors expect.
    parent_trace, _, _, parent_flags, parent_state, parent_valid = parent._context \
        if type(parent) is PLAIN_SPAN else parent.get_span_context()
    if parent_valid and (type(tracer) is IdOnlyTracer or isinstance(tracer, IdOnlyTracer)):
        child, ids, parent_ctx = tracer.child, (parent_trace, parent_flags, parent_state), None
    else:
        child, ids, parent_ctx = None, (), trace.set_span_in_context(parent, _no_parent(tracer))
    attempt_no = 0

    async def observe(outgoing: UpstreamRequest, send: Send) -> UpstreamResponse:
        nonlocal attempt_no
        attempt_no += 1
        backend = backend_of(outgoing.url)
        if child is not None:  # the id-only tracer's: it records nothing
            span, recording = child(*ids), False
        else:
            span = tracer.start_span(outgoing.method, context=parent_ctx, kind=SpanKind.CLIENT)
            recording = span.is_recording()
        # A span that records nothing ignores every call below (the API's NonRecordingSpan),
        # so they are left out for it: a few calls per attempt when no trace is exported.
        if recording:
            span.set_attributes(_client_attributes(outgoing, backend, attempt_no))
        # The span's context in the attempt's own headers, in place (copying the frozen request
        # instead cost more than the rest of the hook), replacing any trace headers there (the
        # client's, or a previous attempt's).
        headers = outgoing.headers
        headers.remove(*_TRACE_NAMES)
        trace_id, span_id, _, flags, state, valid = span._context if type(span) is PLAIN_SPAN \
            else span.get_span_context()
        if valid:  # _traceparent's text, without the call
            headers.set("traceparent", "00-%032x-%016x-%02x" % (  # noqa: UP031
                trace_id, span_id, flags))
            if state is not DEFAULT_TRACE_STATE and state:  # the default is empty: no len()
                headers.set("tracestate", state.to_header())
        started = time.perf_counter()
        try:
            answer = await send(outgoing)
        except GatewayError as error:
            _fail(span, error.code)
            done(backend, error.code, time.perf_counter() - started)
            raise
        except BaseException as error:
            _fail(span, type(error).__name__)
            raise
        if recording:
            span.set_attribute("http.response.status_code", answer.status)
            if answer.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
                span.set_attribute("error.type", str(answer.status))
        status = answer.status
        outcome = _OUTCOMES[status] if status in _OUTCOMES else f"{status // 100}xx"
        if "content-length" in answer.headers:
            # A sized answer is in flight once its headers are: the attempt ends here, which
            # spares every plain answer a wrapper generator (measured: a third of the hook).
            if recording:
                span.end()
            done(backend, outcome, time.perf_counter() - started)
        else:
            answer.body = _ending(answer.body, span, lambda: done(
                backend, outcome, time.perf_counter() - started))
        return answer

    return observe


def _client_attributes(outgoing: UpstreamRequest, backend: str, attempt: int) -> dict:
    # The query is left out: it is the client's, and may carry what a trace should not keep.
    url = outgoing.url.split("?", 1)[0]
    rest = url.partition("://")[2]
    host, _, _ = rest.partition("/")
    address, _, port = host.rpartition(":") if ":" in host else (host, "", "")
    attributes = {"http.request.method": outgoing.method, "url.full": url,
                  "server.address": address, "gateway.backend": backend,
                  "gateway.attempt": attempt}
    if port.isdigit():
        attributes["server.port"] = int(port)
    return attributes


def _fail(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR))
    span.end()


def _ending(body: AsyncIterator[bytes], span: Span, done: Callable[[], None]
            ) -> AsyncIterator[bytes]:
    """`body`, ending the attempt's span however the body ends (exhausted, failed, closed):
    from the end hooks of a body that has them (DeadlineBody.on_end: no layer per chunk),
    else from a generator around it."""
    on_end = getattr(body, "on_end", None)
    if on_end is None:
        return _ending_layer(body, span, done)

    def ended(error: GatewayError | None) -> None:
        if error is not None:
            span.set_attribute("error.type", error.code)
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        done()

    on_end(ended)
    return body


async def _ending_layer(body: AsyncIterator[bytes], span: Span, done: Callable[[], None]
                        ) -> AsyncIterator[bytes]:
    try:
        async for chunk in body:
            yield chunk
    except GatewayError as error:
        span.set_attribute("error.type", error.code)
        span.set_status(Status(StatusCode.ERROR))
        raise
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()
        span.end()
        done()
