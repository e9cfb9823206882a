"""Azurite for tests: the shared process helper (scripts/azurite.py) as a pytest fixture.

    azurite = azurite_fixture()          # in a conftest.py
    def test_x(azurite): azurite.connection_string
"""

from __future__ import annotations

from scripts.azurite import Azurite

from .process_fixture import process_fixture

__all__ = ["Azurite", "azurite_fixture"]


def azurite_fixture(scope: str = "session"):
    """A pytest fixture (assign it to a name in a conftest) yielding a running Azurite."""
    return process_fixture(lambda folder: Azurite(folder).start(), "azurite", scope)
