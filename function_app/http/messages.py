"""Plain request and response values that flow through the pipeline, free of any web framework."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from .headers import Headers


@dataclass
class GatewayRequest:
    """One client request. `body` is fully read (capped upstream)."""

    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    client_host: str
    scheme: str = "http"
    request_id: str = ""
    raw_path: str = ""  # the path as the client sent it, still encoded (latin-1 text of bytes)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class GatewayResponse:
    """`body` is bytes for answers made here, an async iterator for streamed upstream answers."""

    status: int
    headers: Headers
    body: bytes | AsyncIterator[bytes] = b""
