"""The redis tier of the response cache (CACHE_BACKEND=redis), on redis's asyncio client.

Entries are stored under `gwcache:<key>` with a PX expiry equal to their remaining freshness,
so redis drops them itself. Locally CACHE_REDIS_URL is a plain redis:// URL; in Azure it is the
Azure Managed Redis endpoint (rediss://<host>:10000) and, with CACHE_REDIS_ENTRA, every new
connection signs in with an Entra ID token of the managed identity (user name: the identity's
object id, password: the token). Failures raise; cache/tiers.py bounds and counts them.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.credentials import CredentialProvider

from ..cache.entry import CacheEntry, EntryFormatError

PREFIX = "gwcache:"
REDIS_SCOPE = "https://redis.azure.com/.default"


class EntraCredentialProvider(CredentialProvider):
    """(object id, access token) from an azure-identity async credential, asked per connection;
    the credential caches the token and renews it before it expires."""

    def __init__(self, credential: Any):
        self.credential = credential

    def get_credentials(self):  # redis's asyncio connections call the async variant only
        raise NotImplementedError("use get_credentials_async")

    async def get_credentials_async(self) -> tuple[str, str]:
        token = (await self.credential.get_token(REDIS_SCOPE)).token
        return object_id(token), token


def object_id(token: str) -> str:
    """The `oid` claim of a JWT (read, not verified: redis verifies it)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["oid"])


class RedisCacheTier:
    name = "redis"

    def __init__(self, client: Redis, credential: Any = None,
                 now: Callable[[], float] = time.time):
        self.client = client
        self.credential = credential
        self._now = now

    @classmethod
    def open(cls, url: str, *, entra: bool = False, timeout_s: float = 1.0) -> RedisCacheTier:
        credential = provider = None
        if entra:
            from azure.identity.aio import DefaultAzureCredential  # only needed in Azure

            credential = DefaultAzureCredential()
            provider = EntraCredentialProvider(credential)
        client = Redis.from_url(url, credential_provider=provider, socket_timeout=timeout_s,
                                socket_connect_timeout=timeout_s)
        return cls(client, credential)

    async def get(self, key: str) -> CacheEntry | None:
        data = await self.client.get(PREFIX + key)
        if data is None:
            return None
        try:
            return CacheEntry.from_bytes(data)
        except EntryFormatError:
            return None

    async def put(self, key: str, entry: CacheEntry) -> None:
        ttl_ms = int((entry.expires_at() - self._now()) * 1000)
        if ttl_ms > 0:
            await self.client.set(PREFIX + key, entry.to_bytes(), px=ttl_ms)

    async def delete(self, key: str) -> None:
        await self.client.delete(PREFIX + key)

    def stats(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None:
        await self.client.aclose()
        if self.credential is not None:
            await self.credential.close()
