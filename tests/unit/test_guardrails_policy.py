"""GUARDRAILS parsed and checked at start; the policy for a request chosen by name, route, model."""

import json

import pytest

from function_app.guardrails.policy import parse_policies, select
from function_app.settings.load import SettingsError, load_settings


def policies(*entries):
    return parse_policies(list(entries))


def test_named_policy_wins_over_route_and_model():
    chosen = policies({"name": "chat", "routes": ["/v1/chat/*"], "input": {"pii": "redact"}},
                      {"name": "strict", "input": {"pii": "block"}})
    assert select(chosen, "/v1/chat/completions", "m", None).name == "chat"
    assert select(chosen, "/v1/chat/completions", "m", "strict").name == "strict"
    # An unknown name falls back to the route/model choice.
    assert select(chosen, "/v1/chat/completions", "m", "nope").name == "chat"


def test_a_policy_without_models_or_routes_applies_only_by_name():
    chosen = policies({"name": "tenant-only", "input": {"pii": "redact"}})
    assert select(chosen, "/v1/chat/completions", "m", None) is None


def test_models_and_routes_must_both_match_when_both_are_given():
    chosen = policies({"models": ["gpt-4o*"], "routes": ["/v1/*"], "input": {"pii": "block"}})
    assert select(chosen, "/v1/chat/completions", "gpt-4o-mini", None) is not None
    assert select(chosen, "/v1/chat/completions", "llama3", None) is None
    assert select(chosen, "/infer/python", "gpt-4o", None) is None


@pytest.mark.parametrize(("entry", "message"), [
    ({"input": {"content_safety": "redact"}}, "only pii can be redacted"),
    ({"input": {"virus_scan": "block"}}, "unknown check"),
    ({"output": {"prompt_shields": "block"}}, "prompt_shields checks prompts"),
    ({"severity": 9}, "'severity' must be an integer in 0..7"),
    ({"fail": "maybe"}, "'fail' must be"),
    ({"window_chars": 5}, "'window_chars'"),
    ({"models": "gpt-4o"}, "'models' must be a list"),
    ({"pii_patterns": {"x": "(a+)+"}}, "custom pattern 'x' is refused"),
    ({"colour": "blue"}, "unknown keys"),
])
def test_bad_policies_are_refused_naming_the_entry(entry, message):
    with pytest.raises(ValueError, match=message):
        policies(entry)


def test_settings_refuse_a_service_check_without_an_endpoint():
    raw = json.dumps([{"routes": ["/v1/*"], "input": {"prompt_shields": "block"}}])
    with pytest.raises(SettingsError, match="CONTENT_SAFETY_ENDPOINT is empty"):
        load_settings({"GUARDRAILS": raw})
    assert load_settings({"GUARDRAILS": raw, "CONTENT_SAFETY_ENDPOINT": "http://127.0.0.1:9"})


def test_key_auth_needs_the_key_and_a_bad_list_names_the_setting():
    with pytest.raises(SettingsError, match="CONTENT_SAFETY_KEY"):
        load_settings({"CONTENT_SAFETY_ENDPOINT": "http://127.0.0.1:9",
                       "CONTENT_SAFETY_AUTH": "key"})
    with pytest.raises(SettingsError, match="GUARDRAILS"):
        load_settings({"GUARDRAILS": "{not json"})
