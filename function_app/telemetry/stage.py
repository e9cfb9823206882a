"""The telemetry stage: it opens the request span, hands the upstream step its per-attempt hook,
and when the answer's last byte is out records the metrics, ends the span and writes the log line.

It runs right after the request id stage and before the error stage, so it sees every answer,
errors included, as the client sees it; for a streamed answer it waits for the stream to end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from opentelemetry.trace import Span, Status, StatusCode

from ..core.body_watch import BodyWatch, watched
from ..core.pipeline import Handler, Stage
from ..http.messages import GatewayRequest, GatewayResponse
from ..routing.attempts import ATTEMPT_OBSERVER
from .observe import Telemetry
from .tracing import request_span_and_observer

_OBSERVER = ATTEMPT_OBSERVER.name
_WHOLE = (bytes, bytearray)  # `bytes | bytearray` written in the call makes a union each time


def telemetry_stage(telemetry: Telemetry) -> Stage:
    tracer = telemetry.tracer
    attempt_done = telemetry.metrics.attempt_done  # counts each upstream attempt
    backend_of = telemetry.backend_of_url  # bound once, not once a request
    finish = telemetry.finish

    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        started = time.perf_counter()
        span, observer, trace_text = request_span_and_observer(tracer, request, backend_of,
                                                               attempt_done)
        context = request.context
        context.request_span = span
        context.facts[_OBSERVER] = observer  # ATTEMPT_OBSERVER.set, without the call
        try:
            response = await call_next(request)
        except BaseException:  # cancelled: the client went away before an answer
            finish(request, span, 499, started, None, "cancelled", trace_text)
            raise
        body = response.body
        if type(body) is bytes or isinstance(body, _WHOLE):  # the usual bytes: no call
            finish(request, span, response.status, started, None, None, trace_text)
        else:
            response.body = _watch(body, telemetry, request, span, response.status, started,
                                   trace_text)
        return response

    return stage


def _watch(body: AsyncIterator[bytes], telemetry: Telemetry, request: GatewayRequest,
           span: Span, status: int, started: float, trace_text: str | None
           ) -> AsyncIterator[bytes]:
    """`body`, whose first chunk and end are recorded: through the BodyWatch it carries when
    that is free (core/body_watch.py: no layer per chunk; the bill's bodies), else through a
    `watched` layer with the same hooks."""
    first: float | None = None

    def chunk_out() -> None:
        nonlocal first
        first = time.perf_counter()
        span.add_event("gen_ai.first_chunk")

    def ended(error: str | None, exc: BaseException | None) -> None:
        if exc is not None:  # a body that raised
            span.set_status(Status(StatusCode.ERROR))
        telemetry.finish(request, span, status, started, first, error, trace_text)

    watch = getattr(body, "watch", None)
    if isinstance(watch, BodyWatch) and watch.take(chunk_out, ended):
        return body
    watch = BodyWatch()
    watch.take(chunk_out, ended)
    return watched(body, watch)
