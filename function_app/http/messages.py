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
    raw_path: str = ""  # the path as the client sent it, still encoded (latin-1 text of bytes)
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
        self.set_headers([(name, value)])

    def set_headers(self, headers: Headers) -> None:
        """Replace any existing fields of these names (case-insensitive) with `headers`."""
        names = {name.lower() for name, _ in headers}
        self.headers = [(k, v) for k, v in self.headers if k.lower() not in names]
        self.headers.extend(headers)
