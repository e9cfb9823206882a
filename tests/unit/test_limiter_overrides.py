"""Effective limits from settings and the overrides store, refreshed on the injected clock."""

from __future__ import annotations

import pytest

from function_app.core.store_errors import StoreUnavailable
from function_app.ratelimit.limits import Limit
from function_app.ratelimit.overrides import OverrideSource
from function_app.ratelimit.store import Override
from function_app.settings.load import load_settings
from tests.support.clock import FakeClock
from tests.support.stores import MemoryOverrideStore

SETTINGS = load_settings({"GLOBAL_RPS": "1000", "GLOBAL_BURST": "2000", "CLIENT_RPS": "200",
                          "CLIENT_BURST": "400", "RATE_LIMIT_OVERRIDES_REFRESH_S": "30"})
FROM_SETTINGS = (SETTINGS.limit_defaults, SETTINGS.limiter.overrides_refresh_s)


def rates(scoped):
    return [(s.scope, s.key, s.limit.rate) for s in scoped]


@pytest.mark.asyncio
async def test_defaults_apply_until_overrides_are_loaded_then_overrides_win():
    store = MemoryOverrideStore([Override("client", "vip", Limit(500, 1000))])
    source = OverrideSource(store, FakeClock(), *FROM_SETTINGS, background=False)
    assert rates(source.limits_for("vip", "/x")) == [
        ("global", "global", 1000), ("client", "vip", 200)
    ]
    assert await source.refresh()
    assert rates(source.limits_for("vip", "/x"))[1] == ("client", "vip", 500)


@pytest.mark.asyncio
async def test_changes_are_picked_up_by_the_periodic_refresh():
    store, clock = MemoryOverrideStore(), FakeClock()
    source = OverrideSource(store, clock, *FROM_SETTINGS)
    await source.start()
    await store.put(Override("route", "/infer/python", Limit(5, 5, shadow=True)))
    assert len(source.limits_for(None, "/infer/python")) == 1  # not yet: global only
    await clock.advance(30.0)
    scoped = source.limits_for(None, "/infer/python")
    assert rates(scoped) == [("global", "global", 1000), ("route", "/infer/python", 5)]
    assert scoped[1].limit.shadow
    await source.close()


class FailingOverrides(MemoryOverrideStore):
    fail = False

    async def read_all(self):
        if self.fail:
            raise StoreUnavailable("down")
        return await super().read_all()


@pytest.mark.asyncio
async def test_a_failed_refresh_keeps_the_last_good_overrides():
    store = FailingOverrides([Override("client", "vip", Limit(500, 1000))])
    source = OverrideSource(store, FakeClock(), *FROM_SETTINGS, background=False)
    await source.refresh()
    store.fail = True
    assert not await source.refresh()
    assert rates(source.limits_for("vip", None))[1][2] == 500
    assert source.counters["override_refresh_failures"] == 1


def test_real_settings_feed_the_defaults():
    settings = load_settings({"CLIENT_RPS": "0", "RATE_LIMIT_GLOBAL_SHARDS": "3"})
    scoped = OverrideSource(None, FakeClock(), settings.limit_defaults,
                            settings.limiter.overrides_refresh_s).limits_for("anyone", None)
    assert [(s.scope, s.shards) for s in scoped] == [("global", 3)]
