"""Importing main.py (what the worker does on every cold start, to index the functions) loads
the function handlers only: the gateway's HTTP client, storage SDKs, telemetry and cache tiers
load when the first request builds the gateway (function_app/wiring/lazy.py)."""

import json
import subprocess
import sys
from pathlib import Path

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
