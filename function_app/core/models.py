"""Plain request and response values that flow through the pipeline, free of any web framework."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

Headers = list[tuple[str, str]]


@dataclass
class GatewayRequest:
    """One client request. Header names are lower case; `body` is fully read (capped upstream)."""

    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    client_host: str
    scheme: str = "http"
    request_id: str = ""
    context: dict[str, Any] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass
class GatewayResponse:
    """`body` is bytes for answers made here, an async iterator for streamed upstream answers."""

    status: int
    headers: Headers
    body: bytes | AsyncIterator[bytes] = b""

    def set_header(self, name: str, value: str) -> None:
        lowered = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lowered]
        self.headers.append((name, value))
