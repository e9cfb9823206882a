import json

import pytest

from function_app.core.settings import SPECS, SettingsError, load_settings


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


def test_every_spec_names_a_settings_field():
    fields = set(load_settings({}).__dataclass_fields__)
    assert {spec.attr for spec in SPECS} == fields
    assert len({spec.name for spec in SPECS}) == len(SPECS)


def test_the_readme_documents_every_setting():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [spec.name for spec in SPECS if f"`{spec.name}`" not in readme]
    assert missing == []


def test_a_bad_connection_string_is_named_without_echoing_its_key():
    with pytest.raises(SettingsError) as caught:
        load_settings({"RATE_LIMIT_STORAGE_CONNECTION": "AccountName=a;SecretThing=hunter2"})
    assert "RATE_LIMIT_STORAGE_CONNECTION" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("value", ["UseDevelopmentStorage=true", "usedevelopmentstorage=TRUE"])
def test_development_storage_shorthand_is_accepted_as_given(value):
    settings = load_settings({"RATE_LIMIT_STORAGE_CONNECTION": value})
    assert settings.rate_limit_storage_connection == value
