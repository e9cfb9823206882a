"""The worker imports the entry file by its stem; exactly one FunctionApp must be visible there."""

import importlib
import json
from pathlib import Path

import azure.functions as func

from funchost.routes import http_function

ROOT = Path(__file__).resolve().parents[2]


def test_entry_file_is_the_one_the_settings_name():
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert values["PYTHON_SCRIPT_FILE_NAME"] == "main.py"
    assert values["PYTHON_ENABLE_INIT_INDEXING"] == "1"
    assert (ROOT / "main.py").is_file()
    assert not (ROOT / "function_app.py").exists()  # the package would shadow it


def test_exactly_one_function_app_is_visible_in_the_entry_module():
    module = importlib.import_module(Path("main.py").stem)
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    assert len(apps) == 1


def test_every_route_is_registered_with_its_methods_and_auth_level():
    module = importlib.import_module("main")
    # Read as the local host reads what the worker reports: each function's raw bindings.
    functions = module.app.get_functions()
    reported = [http_function({"name": f.get_function_name(), "function_id": "id",
                               "raw_bindings": f.get_raw_bindings()}) for f in functions]
    found = {f.name: (f.route, set(f.methods), f.auth_level) for f in reported if f is not None}
    # The one function that is not HTTP: the health-check timer (routing/probes.py).
    others = {f.get_function_name(): json.loads(f.get_raw_bindings()[0])["type"]
              for f, r in zip(functions, reported, strict=True) if r is None}
    assert others == {"health_checks": "timerTrigger"}
    assert found == {
        "healthz": ("healthz", {"GET"}, "anonymous"),
        "stats": ("_gateway/stats", {"GET"}, "function"),
        "health_detail": ("_gateway/health", {"GET"}, "function"),
        "cachez": ("cachez", {"GET"}, "function"),
        "metrics": ("metrics", {"GET"}, "function"),
        "dashboard": ("_gateway/dashboard", {"GET"}, "function"),
        "proxy": ("{*path}", {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"},
                  "function"),
    }


def test_host_json_removes_the_route_prefix():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == ""
