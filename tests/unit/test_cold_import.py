"""Importing main.py (what the worker does on every cold start, to index the functions) loads
the function handlers only: the gateway's HTTP client, storage SDKs, telemetry and cache tiers
load when the first request builds the gateway (function_app/wiring/lazy.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Packages the build imports (or optional features import) that indexing must not pay for.
HEAVY = ("aiohttp", "httpx", "httpx_aiohttp", "azure.core", "azure.data", "azure.storage",
         "azure.identity", "azure.monitor", "redis", "prometheus_client", "opentelemetry.sdk",
         "opentelemetry.exporter", "function_app.wiring.build", "function_app.settings.load")
PROBE = ("import json, sys, main; "
         "print(json.dumps(sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[1:])))))")


def loaded_after(code: str, *prefixes: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code, *prefixes], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return [m for m in json.loads(out.splitlines()[-1])
            if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_importing_main_loads_none_of_the_heavy_modules():
    assert loaded_after(PROBE, *HEAVY) == []


def test_the_probe_sees_a_module_main_does_load():
    # The same check on a package main.py does import: the probe can fail.
    assert "azure.functions" in loaded_after(PROBE, "azure.functions")


def test_the_app_still_indexes_every_function():
    code = ("import json, main; "
            "print(json.dumps(sorted(f.get_function_name() for f in main.app.get_functions())))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert {"healthz", "proxy", "metrics", "health_checks"} <= set(json.loads(out))


# What the first build must not load when nothing needs it: the Table SDK without table storage,
# the OpenTelemetry SDK without an exporter (the ids-only tracer needs the API only).
BUILD = ("import asyncio, json, os, sys; from function_app.wiring.lazy import LazyGateway\n"
         "async def build():\n"
         "    gateway = LazyGateway(lambda: {'PY_SERVICE_URL': 'http://127.0.0.1:9',\n"
         "                                   'NODE_SERVICE_URL': 'http://127.0.0.1:9'})\n"
         "    await gateway.get()\n"
         "    await gateway.aclose()\n"
         "asyncio.run(build())\n"
         "print(json.dumps(sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[1:])))))")


def test_the_first_build_without_storage_or_exporters_loads_no_sdk():
    assert loaded_after(BUILD, "azure.core", "azure.data", "azure.identity",
                        "opentelemetry.sdk") == []


def test_the_build_probe_sees_what_the_build_does_load():
    assert "aiohttp" in loaded_after(BUILD, "aiohttp")


def test_importing_main_leaves_the_collector_running_with_start_up_frozen():
    # main.py imports the app with the collector paused and freezes what it made
    # (function_app/wiring/collector.py): the modules and the app are out of later collections.
    code = ("import gc, json, main; from function_app import app as module; "
            "print(json.dumps([gc.isenabled(), gc.get_freeze_count(), "
            "any(o is module.app for o in gc.get_objects())]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    enabled, frozen, app_walked = json.loads(out.splitlines()[-1])
    assert enabled and frozen > 10_000 and not app_walked


def test_the_first_build_without_guardrails_loads_no_guardrail_policy_or_stage():
    # GUARDRAILS empty (the default): the policies' parser and its PII patterns, the stage and
    # the Content Safety client load only for a value (settings/specs.py, wiring/guardrails.py).
    assert loaded_after(BUILD, "function_app.guardrails.policy", "function_app.guardrails.pii",
                        "function_app.guardrails.stage", "function_app.guardrails.guarded",
                        "function_app.adapters.contentsafety_httpx") == []


GUARDED = BUILD.replace("'NODE_SERVICE_URL': 'http://127.0.0.1:9'",
                        "'NODE_SERVICE_URL': 'http://127.0.0.1:9', 'GUARDRAILS': "
                        "'[{\"name\": \"pii\", \"input\": {\"pii\": \"redact\"}}]'")


def test_with_guardrails_the_build_loads_them():
    assert GUARDED != BUILD
    assert loaded_after(GUARDED, "function_app.guardrails.policy",
                        "function_app.guardrails.stage") == [
        "function_app.guardrails.policy", "function_app.guardrails.stage"]


def test_a_bad_guardrails_value_still_stops_the_build_naming_it():
    from function_app.settings.errors import SettingsError
    from function_app.settings.load import load_settings

    with pytest.raises(SettingsError, match="GUARDRAILS"):
        load_settings({"GUARDRAILS": "[{\"name\": \"x\", \"input\": {\"pii\": \"explode\"}}]"})
    with pytest.raises(SettingsError, match="GUARDRAILS"):
        load_settings({"GUARDRAILS": "not json"})
    assert load_settings({"GUARDRAILS": ""}).guardrails == ()
