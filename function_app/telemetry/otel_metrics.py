"""The same measurements as OpenTelemetry metrics, for an exporter (Azure Monitor, OTLP).

Only built when an exporter is configured; Prometheus (metrics.py) is always there. Names and
attributes are those of the OpenTelemetry GenAI semantic conventions. Only the GenAI figures go
this way: request counts and durations are the host's (Application Insights `requests`) and
Prometheus's, and recording them here too cost every request a few microseconds for nothing.
"""

from __future__ import annotations

from opentelemetry.metrics import Meter

from .labels import NONE
from .metrics import TOKEN_BUCKETS, TTFT_BUCKETS


class OtelInstruments:
    def __init__(self, meter: Meter):
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens per request",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS))
        self._ttft = meter.create_histogram(
            "gen_ai.server.time_to_first_token", unit="s", description="Time to first chunk",
            explicit_bucket_boundaries_advisory=list(TTFT_BUCKETS))

    def request(self, model: str, usage, ttft: float | None) -> None:
        if model == NONE:
            return
        if usage is not None:
            for kind, count in (("input", usage.prompt_tokens),
                                ("output", usage.completion_tokens)):
                self._tokens.record(count, {"gen_ai.request.model": model,
                                            "gen_ai.token.type": kind})
        if ttft is not None:
            self._ttft.record(ttft, {"gen_ai.request.model": model})
