"""redis-server and Azurite Blob as pytest fixtures (assign them to names in a conftest)."""

from __future__ import annotations

import pytest

from scripts.cache_servers import AzuriteBlob, RedisServer

__all__ = ["AzuriteBlob", "RedisServer", "azurite_blob_fixture", "redis_fixture"]


def redis_fixture(scope: str = "session"):
    @pytest.fixture(scope=scope)
    def redis_server(tmp_path_factory: pytest.TempPathFactory):
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
        yield server
        server.stop()

    return redis_server


def azurite_blob_fixture(scope: str = "session"):
    @pytest.fixture(scope=scope)
    def azurite_blob(tmp_path_factory: pytest.TempPathFactory):
        server = AzuriteBlob(tmp_path_factory.mktemp("azurite-blob")).start()
        yield server
        server.stop()

    return azurite_blob
