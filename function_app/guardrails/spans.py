"""Spans of the guardrail checks, children of the request span the telemetry stage opened."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer


@contextmanager
def child_span(tracer: Tracer | None, parent: Span | None, name: str,
               attributes: dict[str, Any] | None = None) -> Iterator[Span | None]:
    """A span under `parent` (nothing when telemetry is off or no request span exists); an
    exception marks it as an error and goes on."""
    if tracer is None or parent is None:
        yield None
        return
    span = tracer.start_span(name, context=trace.set_span_in_context(parent))
    if attributes and span.is_recording():
        span.set_attributes(attributes)
    try:
        yield span
    except BaseException as exc:
        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(Status(StatusCode.ERROR))
        raise
    finally:
        span.end()
