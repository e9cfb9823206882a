"""docs/DEPLOY.md: what a reader can check here is true (make targets, admin CLI commands, the
setting, output and variable names it tells them to use, the routes it calls)."""

from __future__ import annotations

import json
import re
import shlex
import sys

import pytest

from .bicep_ast import INFRA, MAIN, ROOT, BicepFile, app_settings

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from function_app.admin.parser import build_parser
from function_app.settings.specs import SPECS
from scripts.bicep_check.azure_types import ENV_VAR

DOC = (ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
NAME = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b(?!\.md)")
# Set by the platform on the app (App Service managed identity endpoint), not by the template.
PLATFORM = {"IDENTITY_ENDPOINT", "IDENTITY_HEADER"}


def _makefile_targets() -> set[str]:
    source = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^([a-z][\w-]*)\s*:", source, re.M)}


def _known_names() -> set[str]:
    """Names the doc may use: settings, outputs, azd variables, load and checker variables."""
    outputs = set(BicepFile.load(MAIN).declarations("output"))
    parameters = (INFRA / "main.parameters.json").read_text()
    azd = set(re.findall(r"\$\{([A-Z_]+)", parameters))
    load = set(re.findall(r"__ENV\.([A-Z_]+)", "".join(
        p.read_text() for p in (ROOT / "load").rglob("*.js"))))
    container_env = set(re.findall(r"name: '([A-Z_]+)'",
                                   (INFRA / "modules/backend.bicep").read_text()))
    make = set(re.findall(r"^([A-Z_]+) \?=", (ROOT / "Makefile").read_text(), re.M))
    return ({s.name for s in SPECS} | set(app_settings()) | outputs | azd | load
            | container_env | make | {ENV_VAR} | PLATFORM)


def _admin_commands() -> list[str]:
    lines = [line.split("#")[0].strip() for line in DOC.splitlines()]
    return [line.split("python -m function_app.admin", 1)[1] for line in lines
            if line.startswith("python -m function_app.admin ")]


def test_every_make_target_named_exists() -> None:
    inline = re.findall(r"`make ([a-z][\w-]*)", DOC)
    shell = re.findall(r"^(?:[A-Z_]+=\S+\s+)*make ([a-z][\w-]*)", DOC, re.M)
    named = set(inline) | set(shell)
    assert {"infra-check", "load", "test", "setup"} <= named
    assert named <= _makefile_targets(), sorted(named - _makefile_targets())


@pytest.mark.parametrize("command", _admin_commands())
def test_every_admin_command_shown_parses(command) -> None:
    try:
        build_parser().parse_args(shlex.split(command))
    except SystemExit as error:  # argparse exits on an unknown command or flag
        pytest.fail(f"python -m function_app.admin{command}: {error}")


def test_the_doc_shows_tenant_and_key_commands() -> None:
    groups = {tuple(shlex.split(c)[:2]) for c in _admin_commands()}
    assert ("keys", "create") in groups and ("tenants", "set") in groups


def test_every_setting_output_and_variable_name_exists() -> None:
    used = set(NAME.findall(DOC))
    unknown = used - _known_names()
    assert not unknown, f"DEPLOY.md names what nothing defines: {sorted(unknown)}"


def test_every_route_called_exists_in_the_gateway() -> None:
    paths = set(re.findall(r'"\$URL(/[\w/]+)"', DOC))
    assert {"/healthz", "/infer/python", "/infer/node", "/v1/chat/completions"} <= paths
    source = "".join(p.read_text() for p in (ROOT / "function_app").rglob("*.py"))
    for path in paths:
        assert path in source or f'route="{path[1:]}"' in source, path


def test_the_deploy_path_is_complete() -> None:
    for step in ("azd up", "az functionapp keys list", "azd down --purge", "az keyvault purge",
                 "az provider register", "Storage Table Data Contributor", "AddRevision"):
        assert step in DOC, step
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["modelApiKeys"]["value"] == "${MODEL_API_KEYS=}"
    assert "docs/DEPLOY.md" in (ROOT / "README.md").read_text()
