"""A tracer for when no trace is exported: spans with real ids, recording nothing.

It behaves as the SDK does with a sampler that drops everything (a child keeps its parent's trace
id and flags, a root gets a new trace id), so request logs still carry a trace id and backends
still get a `traceparent`, at a fraction of the SDK's cost per span.
"""

from __future__ import annotations

import os
import random

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, Tracer


class IdOnlyTracer(Tracer):
    def __init__(self) -> None:
        # Seeded from the OS so instances differ; not SystemRandom, which is a syscall per id.
        self._bits = random.Random(os.urandom(32)).getrandbits

    def start_span(self, name, context=None, kind=trace.SpanKind.INTERNAL, attributes=None,
                   links=None, start_time=None, record_exception=True,
                   set_status_on_exception=True) -> trace.Span:
        # A SpanContext is a typed tuple: unpacked, not read through a property per field.
        trace_id, _, _, flags, state, valid = trace.get_current_span(context).get_span_context()
        span_id = self._bits(64) or 1
        if valid:
            ctx = SpanContext(trace_id, span_id, False, flags, state)
        else:
            ctx = SpanContext(self._bits(128) or 1, span_id, False, TraceFlags(0))
        return NonRecordingSpan(ctx)

    def start_as_current_span(self, *args, **kwargs):  # pragma: no cover - not used here
        raise NotImplementedError("the gateway hands spans on explicitly")
