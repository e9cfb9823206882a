"""The credential the gateway sends to an MCP server (never the client's own).

auth "key": the configured key as `Authorization: Bearer <key>`, or as the whole value of the
configured header. auth "entra": a Microsoft Entra token for the server's scope from a
TokenSource (managed identity in Azure; adapters/entra_tokens.py), which caches and refreshes.
"""

from __future__ import annotations

from typing import Protocol

from ..core.errors import UpstreamError
from ..http.headers import Headers
from .config import McpServer


class TokenSource(Protocol):
    async def token(self, scope: str) -> str: ...

    async def close(self) -> None: ...


class NoTokens:
    """When no server uses Entra: asking for a token is a wiring bug, said plainly."""

    async def token(self, scope: str) -> str:
        raise UpstreamError("No Entra token source is configured.")

    async def close(self) -> None:
        return None


class Credentials:
    def __init__(self, tokens: TokenSource):
        self._tokens = tokens

    async def apply(self, server: McpServer, headers: Headers) -> None:
        """Set the server's credential on the outgoing `headers`."""
        if server.auth == "none":
            return
        secret = server.key if server.auth == "key" else await self._tokens.token(server.scope)
        if server.header == "authorization":
            headers.set("authorization", f"Bearer {secret}")
        else:
            headers.set(server.header, secret)

    async def close(self) -> None:
        await self._tokens.close()
