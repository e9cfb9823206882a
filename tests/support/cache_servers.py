"""redis-server and Azurite Blob as pytest fixtures (assign them to names in a conftest)."""

from __future__ import annotations

from scripts.cache_servers import AzuriteBlob, RedisServer

from .process_fixture import process_fixture

__all__ = ["AzuriteBlob", "RedisServer", "azurite_blob_fixture", "redis_fixture"]


def redis_fixture(scope: str = "session"):
    return process_fixture(lambda folder: RedisServer(folder).start(), "redis", scope)


def azurite_blob_fixture(scope: str = "session"):
    return process_fixture(lambda folder: AzuriteBlob(folder).start(), "azurite-blob", scope)
