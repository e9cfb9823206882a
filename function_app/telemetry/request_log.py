"""One JSON line per request on the logger `gateway.requests`.

Only what identifies and measures the exchange: ids, route, backend, model, status, timings,
token counts and the hashed client. Never a key, an Authorization value, a prompt or a
completion: the line is built from the fields below only, never from headers or bodies.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

LOGGER = "gateway.requests"
_encode = json.JSONEncoder(separators=(",", ":")).encode  # dumps() builds an encoder per call


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


class RequestLog:
    def __init__(self, logger: logging.Logger | None = None):
        self._log = logger or logging.getLogger(LOGGER)

    def write(self, record: RequestRecord) -> None:
        if not self._log.isEnabledFor(logging.INFO):
            return
        fields = {k: v for k, v in record.__dict__.items() if v is not None}
        fields["latency_ms"] = round(record.latency_ms, 2)
        if record.ttft_ms is not None:
            fields["ttft_ms"] = round(record.ttft_ms, 2)
        # makeRecord + handle is what info() does, minus the stack walk that finds the caller:
        # the caller is always this line.
        log = self._log
        log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, _encode(fields), None,
                                  None, "write"))
