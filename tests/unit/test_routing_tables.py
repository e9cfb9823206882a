"""Pools and fallbacks in the route table and the model table, and their validation."""

import json

import pytest

from function_app.routing.model_routes import parse_model_table
from function_app.routing.routes import parse_routes
from function_app.settings.load import SettingsError, load_settings

BACKENDS = {"python": "http://py:1", "node": "http://node:2", "python2": "http://py2:3"}


def test_the_seed_routes_keep_their_paths_and_python_falls_back_to_node():
    table = parse_routes(None, BACKENDS, 30)
    python = table.match("/infer/python", "POST").route
    assert [[m.name for m in t.members] for t in python.plan.targets] == [["python"], ["node"]]
    assert python.plan.repeatable and python.backend == "python"
    node = table.match("/infer/node", "POST").route
    assert len(node.plan.targets) == 1


def test_a_route_names_a_weighted_prioritised_pool_and_fallbacks_with_their_own_path():
    raw = [{"path": "/gen/*", "methods": ["POST"], "upstream_path": "/v2",
            "backends": ["python", {"backend": "python2", "weight": 3, "priority": 1}],
            "fallbacks": [{"backend": "node", "upstream_path": "/v1", "fallback_on": ["5xx"]}],
            "attempt_timeout_s": 5}]
    route = parse_routes(raw, BACKENDS, 30).match("/gen/x", "POST").route
    primary, fallback = route.plan.targets
    assert [(m.name, m.weight, m.priority) for m in primary.members] == [
        ("python", 1.0, 0), ("python2", 3.0, 1)]
    assert fallback.path == "/v1" and fallback.fallback_on == frozenset({"5xx"})
    assert route.plan.attempt_timeout_s == 5 and not route.plan.repeatable


@pytest.mark.parametrize("entry", [
    {"backends": []},
    {"backends": ["python", "python"]},
    {"backends": [{"backend": "python", "weight": 0}]},
    {"backends": [{"backend": "python", "priority": -1}]},
    {"backend": "python", "fallbacks": ["nowhere"]},
    {"backend": "python", "fallbacks": [{"backend": "node", "fallback_on": ["sometimes"]}]},
    {"backend": "python", "attempt_timeout_s": 99, "timeout_s": 10},
])
def test_bad_pools_are_named_in_the_settings_error(entry):
    raw = json.dumps([{"path": "/p", "methods": ["POST"], **entry}])
    with pytest.raises(SettingsError, match="GATEWAY_ROUTES"):
        load_settings({"GATEWAY_ROUTES": raw})


def test_a_model_route_names_a_pool_and_fallback_models():
    table = parse_model_table({
        "big": {"backends": ["python", {"backend": "http://gpu:8000/v1", "weight": 2}],
                "fallbacks": ["small"], "fallback_on": ["429", "context_length"]},
        "small": "node"}, "", {"http://gpu:8000": "k"}, BACKENDS)
    plan = table.plan("big")
    first, second = plan.targets
    assert [(m.name, m.url, m.api_key) for m in first.members] == [
        ("python", "http://py:1", None), ("http://gpu:8000/v1", "http://gpu:8000", "k")]
    assert second.model == "small" and second.fallback_on == frozenset({"429",
                                                                       "context_length"})
    assert table.resolve("big").name == "python"  # the simple view still works
    assert table.plan("unknown") is None


@pytest.mark.parametrize("routes", [
    {"a": {"backends": "python", "fallbacks": ["b"]}},
    {"a": {"backends": "python", "fallbacks": ["a"]}},
    {"a": {"backends": ["ftp://x"]}},
    {"a": {"backends": "python", "fallbacks": "node"}},
])
def test_bad_model_pools_are_named(routes):
    with pytest.raises(SettingsError, match="MODEL_ROUTES"):
        load_settings({"MODEL_ROUTES": json.dumps(routes)})


@pytest.mark.parametrize("name, value", [("RETRY_BUDGET_RATIO", "2"),
                                         ("BREAKER_OPEN_S", "0"), ("ROUTING_TABLE", "a-b")])
def test_bad_routing_settings_are_named(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})
