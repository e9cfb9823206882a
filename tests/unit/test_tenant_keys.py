"""Key format, hashing, records, access checks and budget periods (pure)."""

import datetime as dt
import hashlib
import random

import pytest

from function_app.tenants import budgets, keys
from function_app.tenants.access import Grant, model_allowed, refusal, route_allowed
from function_app.tenants.records import (
    KeyRecord,
    TenantRecord,
    UsageRecord,
    from_fields,
    to_fields,
    valid_tenant,
)


def record(**changes) -> KeyRecord:
    return KeyRecord("h" * 64, "abcd2345", "acme", "ci", 1_700_000_000.0).with_(**changes)


def test_generated_key_has_readable_prefix_and_valid_checksum():
    key = keys.generate()
    prefix = keys.prefix_of(key)
    assert key.startswith(f"gw_{prefix}_") and len(key) == 3 + 8 + 1 + 38


def test_keys_differ_and_tampering_breaks_the_checksum():
    rng = random.Random(1)
    key = keys.generate(rng.choice)
    assert keys.generate() != keys.generate()
    flipped = key[:-7] + ("A" if key[-7] != "A" else "B") + key[-6:]
    assert keys.prefix_of(flipped) is None
    assert keys.prefix_of("sk-not-a-gateway-key") is None
    assert keys.prefix_of(key + "x") is None


def test_hash_is_sha256_hex_of_the_whole_key():
    assert keys.key_hash("abc") == hashlib.sha256(b"abc").hexdigest()
    assert keys.key_hash("a") != keys.key_hash("b")


def test_prefix_normalisation_accepts_prefix_or_key():
    key = keys.generate()
    prefix = keys.prefix_of(key)
    assert keys.normalise_prefix(key) == prefix
    assert keys.normalise_prefix(f"gw_{prefix}") == prefix
    assert keys.normalise_prefix(prefix) == prefix
    assert keys.normalise_prefix("nope!") is None


def test_refusal_for_revoked_and_expired_keys():
    assert refusal(record(), 1e10) is None
    assert refusal(record(revoked=True), 0) == "revoked"
    assert refusal(record(expires=100.0), 99.0) is None
    assert refusal(record(expires=100.0), 100.0) == "expired"


def test_models_and_routes_allow_lists_with_patterns():
    assert model_allowed(record(), "anything")
    assert model_allowed(record(models=("gpt-4o*", "sim-python")), "gpt-4o-mini")
    assert not model_allowed(record(models=("sim-python",)), "sim-node")
    assert route_allowed(record(routes=("/v1/*",)), "/v1/chat/completions")
    assert not route_allowed(record(routes=("/v1/*",)), "/infer/python")


def test_records_round_trip_through_plain_fields():
    key = record(models=("a", "b"), expires=5.0, revoked=True, daily_tokens=7, rps=2.5)
    assert from_fields(KeyRecord, to_fields(key)) == key
    assert to_fields(key)["models"] == "a,b"
    tenant = TenantRecord("acme", 1.0, 10, 20)
    assert from_fields(TenantRecord, to_fields(tenant)) == tenant
    usage = UsageRecord("acme", "abcd2345", "2026-11-29", 3, 40, 0.5, 9.0)
    assert from_fields(UsageRecord, to_fields(usage)) == usage


def test_tenant_names_are_checked():
    assert valid_tenant("team-a.prod_1") == "team-a.prod_1"
    with pytest.raises(ValueError):
        valid_tenant("a/b")


def utc(*args) -> float:
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


def test_budget_periods_are_utc_days_and_months():
    now = utc(2026, 12, 31, 23, 59, 59)
    assert budgets.period_id(budgets.DAY, now) == "2026-12-31"
    assert budgets.period_id(budgets.MONTH, now) == "2026-12"
    assert budgets.period_end(budgets.DAY, "2026-12-31") == utc(2027, 1, 1)
    assert budgets.period_end(budgets.MONTH, "2026-02") == utc(2026, 3, 1)
    assert budgets.period_end(budgets.MONTH, "2026-12") == utc(2027, 1, 1)


def test_budget_scopes_are_per_period_buckets_without_refill():
    grant = Grant(record(daily_tokens=1000, monthly_tokens=0), TenantRecord("acme", 0, 0, 9000))
    scoped = budgets.budget_scopes(grant, utc(2026, 11, 29, 12))
    assert [(s.scope, s.key, s.limit.rate, s.limit.burst) for s in scoped] == [
        ("budget_key_day", "abcd2345:2026-11-29", 0.0, 1000.0),
        ("budget_tenant_month", "acme:2026-11", 0.0, 9000.0)]
    assert budgets.reset_at("budget_tenant_month", "acme:2026-11") == utc(2026, 12, 1)
    assert budgets.is_budget("budget_key_day") and not budgets.is_budget("client_tpm")
