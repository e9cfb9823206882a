"""The worker's gateway settles the garbage collector once, after its build: the objects alive
then leave its generations (gc.freeze), young collections wait for more new objects and full
ones come less often, so requests pay less collection and a full collection under many streams
neither scans start-up nor pauses the loop as often (#26, function_app/wiring/lazy.py)."""

import gc

import pytest

from function_app import app as app_module
from function_app.settings import load as settings_load
from function_app.wiring import build, collector, lazy
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
    monkeypatch.setattr(collector, "_settled", False)
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


async def test_ready_is_the_built_gateway_once_built_and_none_before_or_after_close(unsettled):
    made, builds = unsettled
    gateway = LazyGateway(lambda: {})
    assert gateway.ready is None  # the request path then awaits get (and its build)
    assert await gateway.get() is made and gateway.ready is made and len(builds) == 1
    gateway.install(None)
    assert gateway.ready is None


def test_the_workers_gateway_freezes():
    assert app_module.gateway._freeze is True


# Start-up's own objects: made with the collector paused, frozen once made (collector.py).

@pytest.fixture
def thawed():
    """The test process's collector as it was after the test (frozen objects given back)."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.enable()
    gc.set_threshold(*thresholds)


def test_start_up_objects_are_made_with_the_collector_paused_then_frozen(thawed):
    made = []
    with collector.start_up_objects():
        assert not gc.isenabled()
        made.append({"a": [1]})
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    # Frozen: out of every generation the collector walks.
    assert not any(o is made[0] for o in gc.get_objects())


def test_a_failed_start_up_enables_the_collector_and_freezes_nothing(thawed):
    with pytest.raises(RuntimeError), collector.start_up_objects():
        raise RuntimeError("import failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_collector_the_process_paused_is_left_alone(thawed):
    gc.disable()
    with collector.start_up_objects():
        assert not gc.isenabled()
    assert not gc.isenabled() and gc.get_freeze_count() == 0


def _build_seeing_the_collector(monkeypatch, made) -> list[bool]:
    """build_gateway replaced by one that returns `made` and notes, each time, whether the
    collector was running."""
    seen: list[bool] = []

    async def fake_build(settings):
        seen.append(gc.isenabled())
        return made

    monkeypatch.setattr(build, "build_gateway", fake_build)
    return seen


async def test_the_workers_build_runs_with_the_collector_paused(unsettled, monkeypatch):
    made, _ = unsettled
    seen = _build_seeing_the_collector(monkeypatch, made)
    assert await LazyGateway(lambda: {}, freeze=True).get() is made
    assert seen == [False] and gc.isenabled() and gc.get_freeze_count() > 1000


async def test_a_failed_worker_build_leaves_the_collector_running_and_is_retried(unsettled,
                                                                                 monkeypatch):
    made, _ = unsettled
    from function_app.settings.errors import SettingsError

    calls = []

    def load(environ):
        calls.append(environ)
        if len(calls) == 1:
            raise SettingsError("RATE_LIMIT_RPM: not a number")
        return environ

    monkeypatch.setattr(settings_load, "load_settings", load)
    gateway = LazyGateway(lambda: {}, freeze=True)
    with pytest.raises(SettingsError, match="RATE_LIMIT_RPM"):
        await gateway.get()
    assert gc.isenabled() and gc.get_freeze_count() == 0 and not collector._settled
    assert await gateway.get() is made and collector._settled


async def test_a_plain_gateway_builds_with_the_collector_running(unsettled, monkeypatch):
    made, _ = unsettled
    seen = _build_seeing_the_collector(monkeypatch, made)
    assert await LazyGateway(lambda: {}).get() is made
    assert seen == [True]
