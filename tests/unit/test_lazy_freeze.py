"""The worker's gateway settles the garbage collector once, after its build: the objects alive
then leave its generations (gc.freeze), young collections wait for more new objects and full
ones come less often, so requests pay less collection and a full collection under many streams
neither scans start-up nor pauses the loop as often (#26, function_app/wiring/lazy.py)."""

import gc

import pytest

from function_app import app as app_module
from function_app.settings import load as settings_load
from function_app.wiring import build, lazy
from function_app.wiring.lazy import FULL_EVERY, YOUNG_THRESHOLD, LazyGateway


class Built:
    async def aclose(self) -> None:
        pass


@pytest.fixture
def unsettled(monkeypatch):
    """This process as if nothing had settled its collector (CPython's default young threshold),
    the build faked; the collector given back as it was afterwards."""
    made = Built()
    builds = []

    async def fake_build(settings):
        builds.append(settings)
        return made

    monkeypatch.setattr(build, "build_gateway", fake_build)
    monkeypatch.setattr(settings_load, "load_settings", lambda environ: environ)
    thresholds = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(2000, *thresholds[1:])
    yield made, builds
    gc.unfreeze()  # the test process's objects back in the collector's hands
    gc.set_threshold(*thresholds)


async def test_the_workers_first_build_settles_the_collector_once(unsettled):
    made, builds = unsettled
    middle = gc.get_threshold()[1]
    gateway = LazyGateway(lambda: {}, freeze=True)
    assert gc.get_freeze_count() == 0
    assert await gateway.get() is made
    frozen = gc.get_freeze_count()
    assert frozen > 1000  # the modules, the app: start-up, out of later collections
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, FULL_EVERY)
    assert YOUNG_THRESHOLD > 2000 and FULL_EVERY > 10
    assert await gateway.get() is made and len(builds) == 1
    gc.set_threshold(50_000, middle, 7)  # an operator's own tuning, after the build
    lazy.settle_collector()  # once a process: another build changes nothing
    assert gc.get_freeze_count() == frozen and gc.get_threshold() == (50_000, middle, 7)


async def test_a_plain_gateway_leaves_the_collector_alone(unsettled):
    made, _ = unsettled
    thresholds = gc.get_threshold()
    assert await LazyGateway(lambda: {}).get() is made
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == thresholds


def test_the_workers_gateway_freezes():
    assert app_module.gateway._freeze is True
