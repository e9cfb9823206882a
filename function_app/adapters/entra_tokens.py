"""The TokenSource over azure-identity's async credentials (aoai/tokens.py caches it).

ManagedIdentityCredential when the platform's managed identity endpoint is set (IDENTITY_ENDPOINT
and IDENTITY_HEADER on App Service and Functions, or IMDS), with AZURE_CLIENT_ID naming a
user-assigned identity; DefaultAzureCredential otherwise (a developer's az login, workload
identity). azure-identity is imported on first use only: a gateway without Entra backends never
loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..aoai.tokens import CachedTokens, Token
from ..core.clock import SystemClock


def make_credential(environ: Mapping[str, str]) -> Any:
    """The async credential for this environment (see the module docstring)."""
    client_id = environ.get("AZURE_CLIENT_ID") or None
    if environ.get("IDENTITY_ENDPOINT") or environ.get("MSI_ENDPOINT"):
        from azure.identity.aio import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id)
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id)


class AzureIdentitySource:
    """Tokens from an azure-identity async credential; `renew` replaces the credential."""

    def __init__(self, factory: Callable[[], Any], key: str):
        self._factory, self.key = factory, key
        self._credential: Any = None

    async def fetch(self, scope: str) -> Token:
        if self._credential is None:
            self._credential = self._factory()
        info = await self._credential.get_token_info(scope)
        return Token(info.token, float(info.expires_on),
                     float(info.refresh_on) if info.refresh_on else None)

    async def renew(self) -> None:
        old, self._credential = self._credential, None
        if old is not None:
            await old.close()

    async def close(self) -> None:
        await self.renew()


def identity_source(environ: Mapping[str, str]) -> AzureIdentitySource:
    """The gateway's managed identity (or developer credential) as a TokenSource."""
    client_id = environ.get("AZURE_CLIENT_ID") or "system"
    return AzureIdentitySource(lambda: make_credential(environ), f"identity:{client_id}")


def identity_tokens(environ: Mapping[str, str]) -> CachedTokens:
    """The managed identity's tokens, cached per scope and renewed before they expire: what the
    model backends, MCP servers and Content Safety are sent (aoai/tokens.py)."""
    return CachedTokens(identity_source(environ), SystemClock())
