"""Backends given as objects: settings, the Azure wire and the credentials each attempt sends."""

import json

import pytest

from function_app.aoai.wire import azure_body, azure_path, with_credentials
from function_app.http.headers import Headers
from function_app.routing.backends import DEFAULT_SCOPE, BackendSpec
from function_app.settings.load import SettingsError, load_settings

AZURE = {"url": "https://res.openai.azure.com", "api": "azure", "auth": "entra",
         "api_version": "2024-10-21", "deployment": {"gpt-4o": "gpt4o-ptu"}}


def settings(backends: dict, routes: dict | None = None, **env: str):
    return load_settings({"GATEWAY_BACKENDS": json.dumps(backends),
                          "MODEL_ROUTES": json.dumps(routes or {}), **env})


def test_an_object_backend_carries_its_wire_to_the_model_routes_members():
    loaded = settings({"aoai": AZURE, "plain": "http://127.0.0.1:9"},
                      {"gpt-4o": {"backends": [{"backend": "aoai", "priority": 0},
                                               {"backend": "plain", "priority": 1}]}})
    spec = loaded.backend_specs["aoai"]
    assert (spec.api, spec.auth, spec.scope) == ("azure", "entra", DEFAULT_SCOPE)
    assert loaded.backends["aoai"] == "https://res.openai.azure.com"
    members = loaded.model_table.plan("gpt-4o").targets[0].members
    assert [m.backend for m in members] == [spec, None]
    assert "plain" not in loaded.backend_specs  # the string form is as before


def test_a_key_is_read_from_the_setting_it_names_and_never_shown():
    loaded = settings({"k": {**AZURE, "auth": "key", "key_setting": "AOAI_KEY"}}, {"m": "k"},
                      AOAI_KEY="s3cret-key")
    assert loaded.backend_specs["k"].key == "s3cret-key"
    assert "s3cret-key" not in repr(loaded.backend_specs["k"])


@pytest.mark.parametrize("bad", [
    {**AZURE, "api": "bedrock"}, {**AZURE, "auth": "password"}, {**AZURE, "api_version": ""},
    {**AZURE, "api_version": "2024-10-21&x=1"}, {**AZURE, "deployment": "a/../b"},
    {**AZURE, "deployment": {}}, {**AZURE, "url": "ftp://x"},
    {**AZURE, "url": "https://user:pw@res.openai.azure.com"}, {**AZURE, "extra": 1},
    {**AZURE, "auth": "key"}, {**AZURE, "auth": "key", "key_setting": "UNSET_KEY"},
    {**AZURE, "key_setting": "AOAI_KEY"}, {**AZURE, "scope": "not a uri"},
])
def test_a_bad_backend_object_stops_start_up_naming_the_setting(bad):
    with pytest.raises(SettingsError) as caught:
        settings({"aoai": bad})
    assert "GATEWAY_BACKENDS" in str(caught.value) and "aoai" in str(caught.value)


def spec(**kw) -> BackendSpec:
    base = {"name": "aoai", "url": "https://res", "api": "azure", "auth": "entra",
            "api_version": "2024-10-21", "deployment": {"gpt-4o": "gpt4o-ptu"}}
    return BackendSpec(**{**base, **kw})


def test_openai_paths_map_to_deployment_paths_with_the_api_version():
    assert azure_path(spec(), "/v1/chat/completions", "gpt-4o") == (
        "/openai/deployments/gpt4o-ptu/chat/completions", "api-version=2024-10-21")
    assert azure_path(spec(), "/v1/embeddings", "ada") == (
        "/openai/deployments/ada/embeddings", "api-version=2024-10-21")
    assert azure_path(spec(deployment="one"), "/v1/completions", "x")[0] == \
        "/openai/deployments/one/completions"
    assert azure_path(spec(), "/v1/responses", "gpt-4o") == (
        "/openai/responses", "api-version=2024-10-21")


def test_the_v1_surface_names_the_deployment_in_the_body():
    v1 = spec(api_version="v1")
    assert azure_path(v1, "/v1/chat/completions", "gpt-4o") == ("/openai/v1/chat/completions", "")
    body = azure_body(v1, b'{"model": "gpt-4o", "messages": []}', "gpt-4o")
    assert json.loads(body) == {"model": "gpt4o-ptu", "messages": []}
    assert azure_body(spec(), b'{"model": "gpt-4o"}', "gpt-4o") == b'{"model": "gpt-4o"}'


CLIENT = Headers([("authorization", "Bearer client"), ("api-key", "client-key"),
                  ("x-api-key", "client-x"), ("content-type", "application/json")])


def test_no_client_credential_reaches_a_backend_with_its_own():
    entra = with_credentials(spec(), CLIENT, "tok-1")
    assert entra.get("authorization") == "Bearer tok-1"
    assert entra.get("api-key") is None and entra.get("x-api-key") is None
    keyed = with_credentials(spec(auth="key", key="k1"), CLIENT, None)
    assert keyed.get("api-key") == "k1" and keyed.get("authorization") is None
    openai_style = with_credentials(spec(api="openai", auth="key", key="k2"), CLIENT, None)
    assert openai_style.get("authorization") == "Bearer k2"
    assert openai_style.get("api-key") is None
    assert entra.get("content-type") == "application/json"


def test_the_documented_settings_example_loads():
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs/AZURE_OPENAI.md").read_text(encoding="utf-8")
    values = json.loads(re.search(r"```json\n(.*?)```", doc, re.S).group(1))
    loaded = load_settings({k: v for k, v in values.items() if k != "AZURE_CLIENT_ID"})
    members = loaded.model_table.plan("gpt-4o").targets[0].members
    assert [(m.name, m.priority, m.backend.auth) for m in members] == [
        ("aoai-ptu", 0, "entra"), ("aoai-paygo", 1, "entra")]
