"""A server process as a pytest fixture: started in a fresh temporary folder, stopped after.

    azurite = process_fixture(lambda folder: Azurite(folder).start(), "azurite")
    # assigned to a name in a conftest or test module: that name is the fixture's
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest


class Stoppable(Protocol):
    def stop(self) -> None: ...


def process_fixture[S: Stoppable](start: Callable[[Path], S], folder: str,
                                  scope: str = "session"):
    """A fixture yielding `start(a new folder named after `folder`)`, stopped at its scope's end
    whether or not the tests passed."""
    @pytest.fixture(scope=scope)
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S]:
        running = start(tmp_path_factory.mktemp(folder))
        try:
            yield running
        finally:
            running.stop()

    return server
