"""The gateway's settings agree across SPECS, local.settings.sample.json and the Bicep.

    SPECS == sample Values - LOCAL_ONLY - WORKER
    SPECS - DEVHOST_ONLY == Bicep app settings - AZURE_ONLY - WORKER

and every SPECS default that the Bicep states as a literal equals the SPECS default.
"""

from __future__ import annotations

import json
import sys

from .bicep_ast import MAIN, ROOT, BicepFile, app_settings, object_properties, string_value

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from function_app.settings.specs import SPECS

# In local.settings.sample.json only.
LOCAL_ONLY = {
    # Flex Consumption takes the runtime from functionAppConfig.runtime; the app setting is
    # not supported there.
    "FUNCTIONS_WORKER_RUNTIME",
    # Azurite's connection string locally; identity-based AzureWebJobsStorage__* in Azure.
    "AzureWebJobsStorage",
}
# Read by the Python worker, not by the gateway: set locally and in Azure, to the same value.
WORKER = {
    "PYTHON_SCRIPT_FILE_NAME": "main.py",
    "PYTHON_ENABLE_INIT_INDEXING": "1",
    # OpenTelemetry in the worker: continue the host's trace; no second Azure Monitor set-up.
    "PYTHON_ENABLE_OPENTELEMETRY": "true",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "false",
}
# In the Bicep only: host storage, telemetry and azure-identity through the managed identity.
AZURE_ONLY = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AZURE_CLIENT_ID",
}
# SPECS the Bicep leaves out: the local host's listening port (App Service owns PORT in Azure), and
# the limiter's connection string, which carries a key: Azure uses TABLE_STORAGE_ENDPOINT with
# the managed identity instead.
DEVHOST_ONLY = {"PORT", "RATE_LIMIT_STORAGE_CONNECTION"}

SAMPLE = ROOT / "local.settings.sample.json"
SPEC_NAMES = {spec.name for spec in SPECS}
SPEC_DEFAULTS = {spec.name: spec.default for spec in SPECS}


def _sample_values() -> dict[str, str]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))["Values"]


def _diff(left: set[str], right: set[str], left_name: str, right_name: str) -> str:
    return (
        f"only in {left_name}: {sorted(left - right)}; only in {right_name}: {sorted(right - left)}"
    )


def test_sample_lists_every_spec_and_nothing_else() -> None:
    names = set(_sample_values()) - LOCAL_ONLY - set(WORKER)
    assert names == SPEC_NAMES, _diff(names, SPEC_NAMES, "local.settings.sample.json", "SPECS")


def test_bicep_sets_every_deployed_spec_and_nothing_else() -> None:
    names = set(app_settings()) - AZURE_ONLY - set(WORKER)
    expected = SPEC_NAMES - DEVHOST_ONLY
    assert names == expected, (
        _diff(names, expected, "Bicep", "SPECS") + " (new SPECS go into gatewaySettingDefaults"
        " in infra/main.bicep, with the same default as a string)"
    )


def test_platform_lists_hold_only_keys_that_exist() -> None:
    assert LOCAL_ONLY <= set(_sample_values())
    assert AZURE_ONLY <= set(app_settings())
    assert not DEVHOST_ONLY & set(app_settings())
    assert not (LOCAL_ONLY | set(WORKER) | AZURE_ONLY) & SPEC_NAMES


def test_worker_settings_match_locally_and_in_azure() -> None:
    sample, bicep = _sample_values(), app_settings()
    for name, value in WORKER.items():
        assert sample.get(name) == value, f"local.settings.sample.json {name}"
        assert name in bicep, f"Bicep misses {name}"
        assert string_value(bicep[name][1]) == value, f"Bicep {name}"


def test_bicep_literal_defaults_equal_spec_defaults() -> None:
    checked = 0
    for name, (_, node) in app_settings().items():
        value = string_value(node)
        if name in SPEC_DEFAULTS and value is not None:
            spec = SPEC_DEFAULTS[name]
            assert value == spec, f"{name}: Bicep {value!r}, SPECS {spec!r}"
            checked += 1
    assert checked >= 5, "expected the Bicep to state most SPECS defaults as literals"


def test_gateway_overrides_parameter_defaults_to_empty() -> None:
    param = BicepFile.load(MAIN).declarations("param")["gatewaySettings"]
    assert object_properties(param.value) == {}
