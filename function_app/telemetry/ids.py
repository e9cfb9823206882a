"""A tracer for when no trace is exported: spans with real ids, recording nothing.

It behaves as the SDK does with a sampler that drops everything (a child keeps its parent's trace
id and flags, a root gets a new trace id), so request logs still carry a trace id and backends
still get a `traceparent`, at a fraction of the SDK's cost per span.
"""

from __future__ import annotations

import os
import random

from opentelemetry import trace
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    Tracer,
    TraceState,
)
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

UNSAMPLED = _UNSAMPLED = TraceFlags(0)  # the flags of every span made here without a parent
_context = tuple.__new__  # SpanContext(...) minus its checks: the ids made here are valid


def _plain_span() -> bool:
    """Whether NonRecordingSpan(context) only keeps `context` in `_context` (its __init__ in
    this API version), so a span can be made without that Python call (root, child: two a
    request): object.__new__ and the one attribute. Checked once; otherwise the constructor."""
    probe = NonRecordingSpan(INVALID_SPAN_CONTEXT)
    return vars(probe) == {"_context": INVALID_SPAN_CONTEXT} and \
        probe.get_span_context() is INVALID_SPAN_CONTEXT


_PLAIN_SPAN = _plain_span()
# The class whose span context is its `_context` attribute (the root and child spans below):
# tracing.py reads it there, a call less than get_span_context; None in another API version.
PLAIN_SPAN = NonRecordingSpan if _PLAIN_SPAN else None
_new = object.__new__
_LOW64 = (1 << 64) - 1


class IdOnlyTracer(Tracer):
    def __init__(self) -> None:
        # Seeded from the OS so instances differ; not SystemRandom, which is a syscall per id.
        self._bits = random.Random(os.urandom(32)).getrandbits

    def start_span(self, name, context=None, kind=trace.SpanKind.INTERNAL, attributes=None,
                   links=None, start_time=None, record_exception=True,
                   set_status_on_exception=True) -> trace.Span:
        # A SpanContext is a typed tuple: unpacked, not read through a property per field.
        trace_id, _, _, flags, state, valid = trace.get_current_span(context).get_span_context()
        if valid:
            return self.child(trace_id, flags, state)
        return self.root()

    def root(self) -> trace.Span:
        """A span with a new trace id: what start_span makes with no valid parent."""
        # One draw of 192 bits is the span id's 64 then the trace id's 128: getrandbits fills
        # a wide draw with the generator's 32-bit words lowest first, so these are the very
        # numbers the two draws `bits(64)`, `bits(128)` gave (one call less a request).
        bits = self._bits(192)
        context = _context(SpanContext, (
            bits >> 64 or 1, bits & _LOW64 or 1, False, _UNSAMPLED, DEFAULT_TRACE_STATE, True))
        if not _PLAIN_SPAN:  # pragma: no cover - another API version
            return NonRecordingSpan(context)
        span = _new(NonRecordingSpan)
        span._context = context
        return span

    def child(self, trace_id: int, flags: TraceFlags, state: TraceState) -> trace.Span:
        """A span of the valid parent context (trace_id, flags, state): what start_span makes
        with that parent, without looking it up in a Context (the attempt spans' path)."""
        context = _context(SpanContext, (trace_id, self._bits(64) or 1, False, flags, state, True))
        if not _PLAIN_SPAN:  # pragma: no cover - another API version
            return NonRecordingSpan(context)
        span = _new(NonRecordingSpan)
        span._context = context
        return span

    def start_as_current_span(self, *args, **kwargs):  # pragma: no cover - not used here
        raise NotImplementedError("the gateway hands spans on explicitly")
