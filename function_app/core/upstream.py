"""The upstream interface: one exchange with a backend, answered as a streamed response.

Implementations translate their own failures into the error tree before they return: a refused or
reset connection is UpstreamError (502), a timeout UpstreamTimeout (504), an exhausted connection
pool Overloaded (503). Implementations: HttpxUpstream (adapters/httpx_upstream.py, the default),
AiohttpUpstream (adapters/aiohttp_upstream.py, UPSTREAM_CLIENT=aiohttp-direct) and MemoryUpstream
(tests/support/upstream_memory.py); tests/contract/test_upstream_contract.py runs one suite over
all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from ..http.headers import Headers


@dataclass(frozen=True)
class UpstreamRequest:
    method: str
    url: str
    headers: Headers
    body: bytes
    connect_timeout_s: float
    timeout_s: float  # the whole exchange, headers and body


@dataclass
class UpstreamResponse:
    status: int
    headers: Headers
    body: AsyncIterator[bytes]  # each chunk as it arrives; closes the exchange when exhausted


class Upstream(Protocol):
    async def send(self, request: UpstreamRequest) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...
