"""The worker's gateway moves the objects alive after its build out of the garbage collector's
generations (gc.freeze), so a full collection under many streams does not scan them (#26)."""

import gc

from function_app import app as app_module
from function_app.settings import load as settings_load
from function_app.wiring import build
from function_app.wiring.lazy import LazyGateway


class Built:
    async def aclose(self) -> None:
        pass


async def built_with(monkeypatch, freeze: bool) -> tuple[int, int]:
    """Freeze counts before and after the first get() of a LazyGateway, the build faked."""
    made = Built()

    async def fake_build(settings):
        return made

    monkeypatch.setattr(build, "build_gateway", fake_build)
    monkeypatch.setattr(settings_load, "load_settings", lambda environ: environ)
    lazy = LazyGateway(lambda: {}, freeze=freeze)
    gc.unfreeze()
    before = gc.get_freeze_count()
    try:
        assert await lazy.get() is made
        assert await lazy.get() is made  # built once, frozen once
        return before, gc.get_freeze_count()
    finally:
        gc.unfreeze()  # the test process's objects back in the collector's hands


async def test_a_freezing_gateway_freezes_what_lives_after_its_build(monkeypatch):
    before, after = await built_with(monkeypatch, freeze=True)
    assert before == 0 and after > 0


async def test_a_plain_gateway_leaves_the_collector_alone(monkeypatch):
    before, after = await built_with(monkeypatch, freeze=False)
    assert before == after == 0


def test_the_workers_gateway_freezes():
    assert app_module.gateway._freeze is True
