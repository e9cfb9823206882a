"""Azurite's Table service as a real process on 127.0.0.1, for the local stack and tests.

`Azurite(log_dir)` starts nothing until `start()`; `stop()` ends it and `start()` brings it back
on the same port. Without `data_dir` tables live in memory (a restart begins empty); with it they
persist there (`make run`).
"""

from __future__ import annotations

from pathlib import Path

from .procs import ROOT, Proc, free_port, spawn

AZURITE_TABLE = ROOT / "node_modules" / ".bin" / "azurite-table"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class Azurite:
    def __init__(self, log_dir: Path, port: int | None = None,
                 data_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.port = port or free_port()
        self.data_dir = data_dir
        self._proc: Proc | None = None

    @property
    def connection_string(self) -> str:
        # 127.0.0.1, never localhost: the SDK treats localhost on a non-default port as Cosmos.
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};"
        )

    @property
    def proc(self) -> Proc | None:
        return self._proc

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.popen.poll() is None

    def start(self, timeout: float = 30.0) -> Azurite:
        """Start (or restart) on `self.port`; returns when the port accepts connections."""
        if self.running:
            return self
        if not AZURITE_TABLE.exists():
            raise RuntimeError(f"{AZURITE_TABLE} is missing: run `npm ci` in {ROOT}")
        if self.data_dir is None:
            storage = ["--inMemoryPersistence"]
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            storage = ["--location", str(self.data_dir)]
        cmd = [str(AZURITE_TABLE), "--tableHost", "127.0.0.1", "--tablePort", str(self.port),
               *storage, "--disableTelemetry", "--skipApiVersionCheck", "--loose"]
        self._proc = spawn("azurite", cmd, port=self.port, log_dir=self.log_dir,
                           ready_path=None, timeout=timeout)
        return self

    def stop(self) -> None:
        """End the process (its whole group); a no-op when it is not running."""
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def log_tail(self, lines: int = 40) -> str:
        return self._proc.log_tail(lines) if self._proc is not None else ""
