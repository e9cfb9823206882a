"""The worker's gateway settles the garbage collector after its build: the objects alive then
leave its generations (gc.freeze) and full collections come less often, so that a full
collection under many streams neither scans them nor pauses the loop as often (#26)."""

import gc

from function_app import app as app_module
from function_app.settings import load as settings_load
from function_app.wiring import build
from function_app.wiring.lazy import FULL_EVERY, LazyGateway


class Built:
    async def aclose(self) -> None:
        pass


async def built_with(monkeypatch, freeze: bool) -> tuple[int, int, int]:
    """Freeze counts before and after the first get() of a LazyGateway, the build faked, and the
    full collection's threshold after it."""
    made = Built()

    async def fake_build(settings):
        return made

    monkeypatch.setattr(build, "build_gateway", fake_build)
    monkeypatch.setattr(settings_load, "load_settings", lambda environ: environ)
    lazy = LazyGateway(lambda: {}, freeze=freeze)
    gc.unfreeze()
    thresholds = gc.get_threshold()
    before = gc.get_freeze_count()
    try:
        assert await lazy.get() is made
        assert await lazy.get() is made  # built once, frozen once
        assert gc.get_threshold()[:2] == thresholds[:2]  # the young generations unchanged
        return before, gc.get_freeze_count(), gc.get_threshold()[2]
    finally:
        gc.unfreeze()  # the test process's objects back in the collector's hands
        gc.set_threshold(*thresholds)


async def test_a_freezing_gateway_freezes_its_objects_and_spaces_full_collections(monkeypatch):
    before, after, full = await built_with(monkeypatch, freeze=True)
    assert before == 0 and after > 0
    assert full == FULL_EVERY


async def test_a_plain_gateway_leaves_the_collector_alone(monkeypatch):
    before, after, full = await built_with(monkeypatch, freeze=False)
    assert before == after == 0
    assert full == gc.get_threshold()[2]


def test_the_workers_gateway_freezes():
    assert app_module.gateway._freeze is True
