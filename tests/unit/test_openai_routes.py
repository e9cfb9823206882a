"""The model table, the OpenAI routes in the route table, and their settings."""

import pytest

from function_app.routing.model_routes import ModelTableError, parse_model_table
from function_app.routing.routes import OPENAI_CHAT, OPENAI_MODELS, parse_routes
from function_app.settings.load import SettingsError, load_settings

BACKENDS = {"python": "http://py:1", "node": "http://node:2"}


def test_default_table_maps_the_simulators_and_unknown_models_to_nothing():
    table = load_settings({"PY_SERVICE_URL": "http://127.0.0.1:9001"}).model_table
    assert table.resolve("sim-python").base_url == "http://127.0.0.1:9001"
    assert table.resolve("sim-small").name == "python"
    assert table.resolve("sim-node").name == "node"
    assert table.resolve("gpt-4o") is None


def test_routes_take_urls_or_backend_names_and_drop_a_trailing_v1():
    table = parse_model_table({"llama3": "http://ollama:11434/v1/", "tiny": "node"}, "", {},
                              BACKENDS)
    assert table.resolve("llama3").base_url == "http://ollama:11434"
    assert table.resolve("tiny").base_url == "http://node:2"
    assert table.names() == ["llama3", "tiny"]


def test_default_backend_catches_models_in_no_route():
    table = parse_model_table({"a": "python"}, "http://vllm:8000", {}, BACKENDS)
    assert table.resolve("anything").base_url == "http://vllm:8000"


def test_api_keys_by_model_then_backend_then_url():
    keys = {"a": "key-a", "python": "key-py", "http://vllm:8000": "key-url"}
    table = parse_model_table({"a": "python", "b": "python", "c": "http://vllm:8000"}, "",
                              keys, BACKENDS)
    assert [table.resolve(m).api_key for m in "abc"] == ["key-a", "key-py", "key-url"]
    assert "key" not in repr(table.resolve("a"))  # never logged


@pytest.mark.parametrize("environ, setting", [
    ({"MODEL_ROUTES": '{"m": "ftp://x"}'}, "MODEL_ROUTES"),
    ({"MODEL_ROUTES": '{"m": "cobol"}'}, "MODEL_ROUTES"),
    ({"MODEL_ROUTES": "[1]"}, "MODEL_ROUTES"),
    ({"DEFAULT_MODEL_BACKEND": "nowhere"}, "DEFAULT_MODEL_BACKEND"),
    ({"MODEL_API_KEYS": '{"python": 5}'}, "MODEL_API_KEYS"),
    ({"CLIENT_TPM": "-1"}, "CLIENT_TPM"),
    ({"DEFAULT_MAX_TOKENS": "0"}, "DEFAULT_MAX_TOKENS"),
])
def test_bad_model_settings_are_named(environ, setting):
    with pytest.raises(SettingsError, match=setting):
        load_settings(environ)


def test_bad_table_entry_error_names_the_setting():
    with pytest.raises(ModelTableError) as caught:
        parse_model_table({"": "python"}, "", {}, BACKENDS)
    assert caught.value.setting == "MODEL_ROUTES"


def test_openai_routes_follow_the_configured_ones():
    table = parse_routes(None, BACKENDS, 60)
    assert table.match("/v1/chat/completions", "POST").route.kind == OPENAI_CHAT
    assert table.match("/v1/models/sim-python", "GET").route.kind == OPENAI_MODELS
    shadowed = parse_routes([{"path": "/v1/*", "methods": ["POST"], "backend": "python"}],
                            BACKENDS, 60)
    assert shadowed.match("/v1/chat/completions", "POST").route.backend == "python"


@pytest.mark.parametrize("entry, fragment", [
    ({"path": "/x", "kind": "grpc", "backend": "python"}, "'kind'"),
    ({"path": "/x", "kind": OPENAI_CHAT, "backend": "python"}, "model table"),
])
def test_bad_route_kinds_are_named(entry, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_routes([entry], BACKENDS, 60)


def test_a_configured_openai_route_needs_no_backend():
    table = parse_routes([{"path": "/openai/chat", "kind": OPENAI_CHAT, "json_body": True}],
                         BACKENDS, 60)
    match = table.match("/openai/chat", "POST")
    assert (match.route.kind, match.route.backend) == (OPENAI_CHAT, "")
    assert match.upstream_path == "/v1/chat/completions"
