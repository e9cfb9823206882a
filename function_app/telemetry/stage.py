"""The telemetry stage: it opens the request span, hands the upstream step its per-attempt hook,
and when the answer's last byte is out records the metrics, ends the span and writes the log line.

It runs right after the request id stage and before the error stage, so it sees every answer,
errors included, as the client sees it; for a streamed answer it waits for the stream to end.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from opentelemetry.trace import Span, Status, StatusCode

from ..core.body_watch import CLIENT_CLOSED, BodyWatch
from ..core.errors import GatewayError
from ..core.pipeline import Handler, Stage
from ..http.messages import GatewayRequest, GatewayResponse
from ..routing.attempts import ATTEMPT_OBSERVER
from .observe import Telemetry
from .tracing import attempt_observer, start_request_span

_WHOLE = (bytes, bytearray)  # `bytes | bytearray` written in the call makes a union each time


def telemetry_stage(telemetry: Telemetry) -> Stage:
    tracer = telemetry.tracer
    attempt_done = telemetry.metrics.attempt_done  # counts each upstream attempt

    async def stage(request: GatewayRequest, call_next: Handler) -> GatewayResponse:
        started = time.perf_counter()
        span = start_request_span(tracer, request)
        request.context.request_span = span
        ATTEMPT_OBSERVER.set(request.context, attempt_observer(
            tracer, span, telemetry.backend_of_url, attempt_done))
        try:
            response = await call_next(request)
        except BaseException:  # cancelled: the client went away before an answer
            telemetry.finish(request, span, 499, started, None, "cancelled")
            raise
        if isinstance(response.body, _WHOLE):
            telemetry.finish(request, span, response.status, started, None, None)
        else:
            response.body = _watch(response.body, telemetry, request, span, response.status,
                                   started)
        return response

    return stage


def _watch(body: AsyncIterator[bytes], telemetry: Telemetry, request: GatewayRequest,
           span: Span, status: int, started: float) -> AsyncIterator[bytes]:
    """`body`, whose first chunk and end are recorded: through its BodyWatch when it has one
    free (core/body_watch.py: no layer per chunk; the bill's bodies), else `_watched`."""
    watch = getattr(body, "watch", None)
    if not isinstance(watch, BodyWatch):
        return _watched(body, telemetry, request, span, status, started)
    first: float | None = None

    def chunk_out() -> None:
        nonlocal first
        first = time.perf_counter()
        span.add_event("gen_ai.first_chunk")

    def ended(error: str | None, exc: BaseException | None) -> None:
        if exc is not None:  # as _watched marks a body that raised
            span.set_status(Status(StatusCode.ERROR))
        telemetry.finish(request, span, status, started, first, error)

    if not watch.take(chunk_out, ended):
        return _watched(body, telemetry, request, span, status, started)
    return body


async def _watched(body: AsyncIterator[bytes], telemetry: Telemetry, request: GatewayRequest,
                   span: Span, status: int, started: float) -> AsyncIterator[bytes]:
    first: float | None = None
    error: str | None = CLIENT_CLOSED  # unless the stream ends or fails first
    try:
        async for chunk in body:
            if first is None:
                first = time.perf_counter()
                span.add_event("gen_ai.first_chunk")
            yield chunk
        error = None
    except GatewayError as exc:
        error = exc.code
        span.set_status(Status(StatusCode.ERROR))
        raise
    except Exception as exc:
        error = type(exc).__name__
        span.set_status(Status(StatusCode.ERROR))
        raise
    finally:
        close = getattr(body, "aclose", None)
        if close is not None:
            await close()  # settles the token bill before it is read below
        telemetry.finish(request, span, status, started, first, error)
