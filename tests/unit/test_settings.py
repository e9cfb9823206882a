import json
from dataclasses import replace

import pytest

from function_app.cache.config import CacheConfig
from function_app.ratelimit.config import LimiterConfig
from function_app.ratelimit.limits import Limit
from function_app.routing.breaker import BreakerConfig
from function_app.settings.load import SettingsError, load_settings
from function_app.settings.specs import SPECS


def test_defaults_give_the_seed_backends_and_port():
    settings = load_settings({})
    assert settings.port == 7071
    assert settings.backends == {"python": "http://127.0.0.1:8001",
                                 "node": "http://127.0.0.1:8002"}
    assert settings.upstream_timeout_s < 230


@pytest.mark.parametrize("name, value", [
    ("PY_SERVICE_URL", "not a url"),
    ("NODE_SERVICE_URL", "ftp://example.invalid"),
    ("PORT", "70000"),
    ("PORT", "eighty"),
    ("UPSTREAM_TIMEOUT_S", "300"),
    ("UPSTREAM_TIMEOUT_S", "nan"),
    ("MAX_BODY_BYTES", "0"),
    ("UPSTREAM_CLIENT", "requests"),
    ("GATEWAY_BACKENDS", "[1, 2]"),
    ("GATEWAY_BACKENDS", '{"gpu": "nope"}'),
    ("GATEWAY_ROUTES", "{not json"),
    ("GATEWAY_ROUTES", '[{"path": "/x", "backend": "missing"}]'),
    ("GATEWAY_ROUTES", '[{"path": "/healthz", "backend": "python"}]'),
    ("RATE_LIMIT_STORAGE_CONNECTION", "DefaultEndpointsProtocol=http"),
    ("RATE_LIMIT_STORAGE_CONNECTION", "AccountName=dev;TableEndpoint=http://127.0.0.1:1/dev"),
    ("TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip"),
    ("CLIENT_ID_SOURCE", "cookie"),
    ("HEALTH_CHECK_SCHEDULE", "* * * * *"),
    ("HEALTH_CHECK_SCHEDULE", "every 10 s"),
])
def test_a_bad_value_stops_start_up_naming_the_setting(name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    assert name in str(caught.value)


def test_extra_backends_and_routes_are_configuration():
    settings = load_settings({
        "GATEWAY_BACKENDS": json.dumps({"gpu": "http://127.0.0.1:9000/"}),
        "GATEWAY_ROUTES": json.dumps([{"path": "/v1/*", "methods": ["GET", "POST"],
                                       "backend": "gpu", "upstream_path": "/v1"}]),
    })
    assert settings.backends["gpu"] == "http://127.0.0.1:9000"
    assert settings.routes[0]["backend"] == "gpu"


def test_blank_values_fall_back_to_defaults():
    assert load_settings({"PORT": "  "}).port == 7071


PARSED_FIELDS = {"backends", "route_table", "model_table", "limiter", "limit_defaults",
                 "breaker", "cache", "backend_specs", "mcp_table"}


def test_every_spec_names_a_settings_field():
    fields = set(load_settings({}).__dataclass_fields__)
    assert {spec.attr for spec in SPECS} == fields - PARSED_FIELDS
    assert len({spec.name for spec in SPECS}) == len(SPECS)


def test_component_configs_have_the_settings_defaults():
    settings = load_settings({})
    assert settings.limiter == LimiterConfig()
    assert settings.breaker == BreakerConfig()
    assert settings.cache == replace(CacheConfig(), credential_headers=frozenset(
        {"authorization", "api-key", "x-api-key", "cookie"}))
    assert settings.limit_defaults.client_limit == Limit(500.0, 1000.0)
    assert settings.limit_defaults.global_limit == Limit(1000.0, 2000.0)


def test_each_field_a_component_reads_from_a_setting_has_that_settings_default():
    """The component repeats the default (it cannot import settings/); this keeps it one value."""
    from dataclasses import dataclass

    from function_app.core.fields import from_setting
    from function_app.settings.configs import default_disagreements

    @dataclass(frozen=True)
    class Drifted:
        lease_s: float = from_setting("rate_limit_lease_s", 9.0)  # the setting says 0.25
        gone: int = from_setting("no_such_setting", 1)

    for config in (LimiterConfig, BreakerConfig, CacheConfig):
        assert default_disagreements(config) == []
    assert default_disagreements(Drifted) == ["Drifted.lease_s", "Drifted.gone"]


def test_the_limiter_config_is_read_from_its_settings():
    settings = load_settings({"RATE_LIMIT_LEASE_S": "0.5", "RATE_LIMIT_FAILURE_MODE": "closed",
                              "RATE_LIMIT_ENABLED": "false", "CLIENT_RPS": "7",
                              "RATE_LIMIT_GLOBAL_SHARDS": "3"})
    assert (settings.limiter.lease_s, settings.limiter.failure_mode) == (0.5, "closed")
    assert settings.limiter.enabled is False
    assert settings.limit_defaults.client_limit == Limit(7.0, 1000.0)
    assert settings.limit_defaults.global_shards == 3


def test_breaker_and_cache_configs_are_read_from_their_settings():
    settings = load_settings({"BREAKER_FAILURES": "9", "CACHE_TTL_SECONDS": "7",
                              "CACHE_ROUTES": '{"/slow": "off"}', "CLIENT_ID_HEADER": "X-Key"})
    assert settings.breaker.failures == 9
    assert (settings.cache.ttl_s, settings.cache.route_modes) == (7, {"/slow": "off"})
    assert "x-key" in settings.cache.credential_headers


def test_route_and_model_tables_are_parsed_once_into_settings():
    settings = load_settings({"GATEWAY_BACKENDS": '{"gpu": "http://127.0.0.1:9000/"}',
                              "GATEWAY_ROUTES": '[{"path": "/v1/*", "backend": "gpu"}]'})
    match = settings.route_table.match("/v1/x", "POST")
    assert match.route.members[0].url == "http://127.0.0.1:9000"
    assert settings.model_table.resolve("sim-node").name == "node"


def test_a_bad_connection_string_is_named_without_echoing_its_key():
    with pytest.raises(SettingsError) as caught:
        load_settings({"RATE_LIMIT_STORAGE_CONNECTION": "AccountName=a;SecretThing=hunter2"})
    assert "RATE_LIMIT_STORAGE_CONNECTION" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("value", ["UseDevelopmentStorage=true", "usedevelopmentstorage=TRUE"])
def test_development_storage_shorthand_is_accepted_as_given(value):
    settings = load_settings({"RATE_LIMIT_STORAGE_CONNECTION": value})
    assert settings.rate_limit_storage_connection == value
