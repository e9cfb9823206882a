"""The blob tier of the response cache (CACHE_BACKEND=blob): the app's own storage account.

One block blob per entry in CACHE_BLOB_CONTAINER, named by its key, with the entry's expiry
(wall-clock seconds) in the blob's metadata. Blob storage has no TTL, so expired entries are
deleted when read, and a sweep every SWEEP_INTERVAL_S lists the container and deletes the
expired ones (several instances sweeping at once only duplicate deletes, which are idempotent).
Locally a connection string (Azurite); in Azure the blob endpoint with DefaultAzureCredential
(the gateway identity holds Storage Blob Data Owner on the account).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from ..cache.entry import CacheEntry, EntryFormatError

log = logging.getLogger(__name__)
EXPIRES = "expires"
SWEEP_INTERVAL_S = 60.0


def blob_name(key: str) -> str:
    return key.replace(":", "/")


class BlobCacheTier:
    name = "blob"

    def __init__(self, service: BlobServiceClient, container: str, credential: Any = None,
                 now: Callable[[], float] = time.time, sweep_interval_s: float = SWEEP_INTERVAL_S):
        self.service = service
        self.container: ContainerClient = service.get_container_client(container)
        self.credential = credential
        self._now = now
        self._ready = False
        self._sweep_interval_s = sweep_interval_s
        self._sweeper: asyncio.Task | None = None
        self.counters = {"swept": 0, "sweep_errors": 0, "expired_reads": 0}

    @classmethod
    def open(cls, connection_string: str, endpoint: str, container: str) -> BlobCacheTier:
        if connection_string:
            return cls(BlobServiceClient.from_connection_string(connection_string), container)
        from azure.identity.aio import DefaultAzureCredential  # only needed in Azure

        credential = DefaultAzureCredential()
        return cls(BlobServiceClient(endpoint, credential=credential), container, credential)

    async def _ensure_container(self) -> None:
        if self._ready:
            return
        try:
            await self.container.create_container()
        except ResourceExistsError:
            pass
        self._ready = True
        if self._sweeper is None and self._sweep_interval_s > 0:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def get(self, key: str) -> CacheEntry | None:
        await self._ensure_container()
        blob = self.container.get_blob_client(blob_name(key))
        try:
            data = await (await blob.download_blob()).readall()
        except ResourceNotFoundError:
            return None
        try:
            entry = CacheEntry.from_bytes(data)
        except EntryFormatError:
            return None
        if entry.expires_at() <= self._now():
            self.counters["expired_reads"] += 1
            await self._delete_quietly(blob_name(key))
            return None
        return entry

    async def put(self, key: str, entry: CacheEntry) -> None:
        await self._ensure_container()
        blob = self.container.get_blob_client(blob_name(key))
        await blob.upload_blob(entry.to_bytes(), overwrite=True,
                               metadata={EXPIRES: f"{entry.expires_at():.3f}"})

    async def delete(self, key: str) -> None:
        await self._delete_quietly(blob_name(key))

    async def _delete_quietly(self, name: str) -> None:
        try:
            await self.container.delete_blob(name)
        except ResourceNotFoundError:
            pass

    async def sweep(self) -> int:
        """Delete every expired entry; returns how many were deleted."""
        await self._ensure_container()
        now, deleted = self._now(), 0
        async for blob in self.container.list_blobs(include=["metadata"]):
            expires = (blob.metadata or {}).get(EXPIRES)
            try:
                expired = expires is None or float(expires) <= now
            except ValueError:
                expired = True
            if expired:
                await self._delete_quietly(blob.name)
                deleted += 1
        self.counters["swept"] += deleted
        return deleted

    async def _sweep_forever(self) -> None:
        while True:
            # Jittered, so instances that started together do not sweep together.
            await asyncio.sleep(self._sweep_interval_s * random.uniform(0.8, 1.2))
            try:
                await self.sweep()
            except Exception:  # the next sweep tries again; reads skip expired entries anyway
                self.counters["sweep_errors"] += 1
                log.warning("blob cache sweep failed", exc_info=True)

    def stats(self) -> dict[str, Any]:
        return dict(self.counters)

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self.container.close()
        await self.service.close()
        if self.credential is not None:
            await self.credential.close()
