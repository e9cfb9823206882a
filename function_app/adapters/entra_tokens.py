"""Microsoft Entra tokens for MCP servers with auth "entra": DefaultAzureCredential (managed
identity in Azure), each token kept until five minutes before it expires."""

from __future__ import annotations

import asyncio
import time

from ..core.errors import UpstreamError

REFRESH_BEFORE_S = 300


class EntraTokens:
    def __init__(self) -> None:
        self._credential = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = asyncio.Lock()

    async def token(self, scope: str) -> str:
        cached = self._tokens.get(scope)
        if cached is not None and cached[1] - REFRESH_BEFORE_S > time.time():
            return cached[0]
        async with self._lock:
            if self._credential is None:
                from azure.identity.aio import DefaultAzureCredential
                self._credential = DefaultAzureCredential()
            try:
                access = await self._credential.get_token(scope)
            except Exception:  # azure-identity's errors carry endpoints: not for the client
                raise UpstreamError("The gateway could not get a token for the MCP server.") \
                    from None
        self._tokens[scope] = (access.token, float(access.expires_on))
        return access.token

    async def close(self) -> None:
        if self._credential is not None:
            await self._credential.close()
