"""The cache's shared tiers as real processes on 127.0.0.1, for tests and benchmarks:
`RedisServer` (Debian's redis-server, no persistence) and `AzuriteBlob` (Azurite's Blob
service, in memory). Each takes a free port at start and stops its whole process group.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .azurite import ACCOUNT, ACCOUNT_KEY
from .procs import ROOT, Proc, free_port, spawn

AZURITE_BLOB = ROOT / "node_modules" / ".bin" / "azurite-blob"


class RedisServer:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.port = free_port()
        self._proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing (Debian: apt-get install redis-server; "
                               "`make setup` installs it where it can)")
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--protected-mode", "yes"]
        self._proc = spawn("redis", cmd, port=self.port, log_dir=self.log_dir, ready_path=None)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None


class AzuriteBlob:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.port = free_port()
        self._proc: Proc | None = None

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};")

    def start(self) -> AzuriteBlob:
        if not AZURITE_BLOB.exists():
            raise RuntimeError(f"{AZURITE_BLOB} is missing: run `npm ci` in {ROOT}")
        cmd = [str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
               "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--loose"]
        self._proc = spawn("azurite-blob", cmd, port=self.port, log_dir=self.log_dir,
                           ready_path=None)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None
