"""The lazily built gateway: built once on first use, and what start-up made is left out of
later garbage collections (function_app/wiring/lazy.py)."""

import gc

import pytest

from function_app.wiring import build, lazy


@pytest.fixture
def unfrozen():
    """This process as if nothing had frozen it yet; frozen again afterwards, the state the
    first build leaves (as in the worker)."""
    gc.unfreeze()
    yield
    gc.freeze()


async def test_the_first_build_freezes_start_up_and_later_uses_change_nothing(unfrozen,
                                                                               monkeypatch):
    built = []

    async def fake_build(settings):
        built.append(settings)
        return object()

    monkeypatch.setattr(build, "build_gateway", fake_build)
    gateway = lazy.LazyGateway(lambda: {})
    assert gc.get_freeze_count() == 0
    instance = await gateway.get()
    frozen = gc.get_freeze_count()
    assert frozen > 1000  # the modules, the app: start-up, out of later collections
    assert await gateway.get() is instance and len(built) == 1
    lazy.freeze_start_up()  # once a process: another build freezes nothing more
    assert gc.get_freeze_count() == frozen
