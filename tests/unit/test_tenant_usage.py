"""Usage and last use reach storage at most once per flush period per key and instance."""

from __future__ import annotations

import pytest

from function_app.adapters.keystore_memory import MemoryKeyStore
from function_app.settings.load import SettingsError, load_settings
from function_app.tenants.prices import Price
from function_app.tenants.store import KeyStoreUnavailable
from function_app.tenants.usage import UsageRecorder
from function_app.wiring.tenants import open_tenancy
from tests.support.clock import FakeClock

NOW = 1_795_000_000.0  # 2026-11-18


def test_a_busy_key_is_handed_over_once_per_period():
    recorder = UsageRecorder(every_s=60)
    for i in range(100):
        recorder.record("acme", "abcd2345", NOW + i * 0.1, requests=1, tokens=10)
    first = recorder.due(NOW + 10)
    assert [(d.requests, d.tokens, d.last_used) for d in first] == [(100, 1000, NOW + 9.9)]
    recorder.record("acme", "abcd2345", NOW + 20, requests=1)
    assert recorder.due(NOW + 30) == []  # handed over 20 s ago: wait
    assert [d.requests for d in recorder.due(NOW + 70.5)] == [1]
    assert recorder.due(NOW + 200) == []  # nothing new


class DownStore(MemoryKeyStore):
    async def add_usage(self, delta):
        raise KeyStoreUnavailable("down")


async def test_usage_that_could_not_be_stored_is_kept_for_the_next_flush():
    settings = load_settings({"GATEWAY_AUTH": "required"})
    clock = FakeClock(NOW)
    tenancy = open_tenancy(settings, clock, DownStore())
    tenancy.recorder.record("acme", "abcd2345", NOW, requests=3, tokens=30)
    await tenancy.flush(force=True)
    tenancy.store = MemoryKeyStore()
    await tenancy.flush(force=True)
    rows = await tenancy.store.list_usage("acme")
    assert [(r.requests, r.tokens) for r in rows] == [(3, 30)]


def test_auth_settings_are_validated_by_name():
    with pytest.raises(SettingsError, match="GATEWAY_AUTH"):
        load_settings({"GATEWAY_AUTH": "sometimes"})
    with pytest.raises(SettingsError, match="GATEWAY_KEY_CACHE_TTL_S"):
        load_settings({"GATEWAY_KEY_CACHE_TTL_S": "10"})  # would break the 5 s revocation
    with pytest.raises(SettingsError, match="MODEL_PRICES"):
        load_settings({"MODEL_PRICES": '{"gpt": -1}'})
    assert load_settings({"MODEL_PRICES": '{"gpt": 2.5}'}).model_prices == {
        "gpt": Price(2.5, 2.5, 2.5, 2.5)}  # the one-number form still means every kind
