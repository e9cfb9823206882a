"""Azurite's Table service as a real process for tests, on a free 127.0.0.1 port.

`Azurite(log_dir)` starts nothing until `start()`; `stop()` ends it and `start()` brings it back
on the same port (in-memory persistence: a restart begins with empty tables). Use
`running_azurite(log_dir)` as a context manager, or `azurite_fixture()` to declare a
session-scoped pytest fixture:

    azurite = azurite_fixture()          # in a conftest.py
    def test_x(azurite): azurite.connection_string
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .procs import ROOT, Proc, free_port, spawn

AZURITE_TABLE = ROOT / "node_modules" / ".bin" / "azurite-table"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


class Azurite:
    def __init__(self, log_dir: Path, port: int | None = None) -> None:
        self.log_dir = log_dir
        self.port = port or free_port()
        self._proc: Proc | None = None

    @property
    def connection_string(self) -> str:
        # 127.0.0.1, never localhost: the SDK treats localhost on a non-default port as Cosmos.
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};"
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.popen.poll() is None

    def start(self, timeout: float = 30.0) -> Azurite:
        """Start (or restart) on `self.port`; returns when the port accepts connections."""
        if self.running:
            return self
        if not AZURITE_TABLE.exists():
            raise RuntimeError(f"{AZURITE_TABLE} is missing: run `npm ci` in {ROOT}")
        cmd = [
            str(AZURITE_TABLE), "--tableHost", "127.0.0.1", "--tablePort", str(self.port),
            "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
        ]
        self._proc = spawn(
            "azurite-table", cmd, port=self.port, log_dir=self.log_dir, ready_path=None,
            timeout=timeout,
        )
        return self

    def stop(self) -> None:
        """End the process (its whole group); a no-op when it is not running."""
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def log_tail(self, lines: int = 40) -> str:
        return self._proc.log_tail(lines) if self._proc is not None else ""


@contextmanager
def running_azurite(log_dir: Path) -> Iterator[Azurite]:
    azurite = Azurite(log_dir).start()
    try:
        yield azurite
    finally:
        azurite.stop()


def azurite_fixture(scope: str = "session"):
    """A pytest fixture (assign it to a name in a conftest) yielding a running Azurite."""

    @pytest.fixture(scope=scope)
    def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
        with running_azurite(tmp_path_factory.mktemp("azurite")) as running:
            yield running

    return azurite
