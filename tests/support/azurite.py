"""Azurite for tests: the shared process helper (scripts/azurite.py) as pytest fixtures.

    azurite = azurite_fixture()          # in a conftest.py
    def test_x(azurite): azurite.connection_string
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts.azurite import Azurite

__all__ = ["Azurite", "azurite_fixture", "running_azurite"]


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
