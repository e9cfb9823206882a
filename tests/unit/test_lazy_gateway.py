"""The lazily built gateway: built once on first use, then the process's garbage collector is
tuned once: start-up frozen, young collections later (function_app/wiring/lazy.py)."""

import gc

import pytest

from function_app.wiring import build, lazy


@pytest.fixture
def untuned():
    """This process as if nothing had tuned its collector; tuned again afterwards, the state
    the first build leaves (as in the worker)."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(2000, *threshold[1:])
    yield
    gc.freeze()
    gc.set_threshold(*threshold)


async def test_the_first_build_tunes_the_collector_and_later_uses_change_nothing(untuned,
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
    assert gc.get_threshold()[0] == lazy.YOUNG_THRESHOLD > 2000
    assert await gateway.get() is instance and len(built) == 1
    gc.set_threshold(50_000)  # an operator's own tuning, after the build
    lazy.tune_collector()  # once a process: another build changes nothing
    assert gc.get_freeze_count() == frozen and gc.get_threshold()[0] == 50_000
