"""The Bicep checker (scripts/bicep_check) passes on infra/ and fails, naming file:line and the
rule, on a copy of infra/ broken in one way per rule."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.bicep_check.__main__ import check_folder
from scripts.bicep_check.azure_types import ENV_VAR, TypeIndex, types_folder

from .bicep_ast import INFRA, ROOT

TYPES = TypeIndex(types_folder())


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "infra"
    shutil.copytree(INFRA, target)
    return target


def _break(folder: Path, relative: str, old: str, new: str) -> None:
    path = folder / relative
    source = path.read_text(encoding="utf-8")
    assert source.count(old) == 1, f"{relative}: expected one {old!r} to replace"
    path.write_text(source.replace(old, new), encoding="utf-8")


def _findings(folder: Path) -> list[str]:
    return [f.render(folder) for f in check_folder(folder, TYPES)]


def test_infra_passes() -> None:
    assert _findings(INFRA) == []


IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31"
# (file, text, replacement, expected `file:line: rule` prefix, words in the reason)
BROKEN = {
    "undeclared-param": ("main.bicep",
                         "location: location\n    tags: tags\n    deploymentContainer",
                         "location: locaton\n    tags: tags\n    deploymentContainer",
                         "main.bicep:", "'locaton'"),
    "undeclared-var": ("main.bicep", "appSettings: union(gatewaySettingDefaults,",
                       "appSettings: union(gatewaySettingDefault,",
                       "main.bicep:", "'gatewaySettingDefault'"),
    "undeclared-resource": ("main.bicep", "output AZURE_RESOURCE_GROUP string = rg.name",
                            "output AZURE_RESOURCE_GROUP string = rgx.name",
                            "main.bicep:", "'rgx'"),
    "undeclared-module": ("main.bicep", "storageAccountName: storage.outputs.name\n    blob",
                          "storageAccountName: storag.outputs.name\n    blob",
                          "main.bicep:", "'storag'"),
    "undeclared-loop-variable": ("modules/roles.bicep",
                                 "guid(storage.id, gatewayPrincipalId, roleId)",
                                 "guid(storage.id, gatewayPrincipalId, role)",
                                 "modules/roles.bicep:", "'role'"),
    "scope-resource-group": ("main.bicep", "uniqueString(subscription().id, rg.id, 'client-hash')",
                             "uniqueString(subscription().id, resourceGroup().id, 'client-hash')",
                             "main.bicep:", "resourceGroup() is not allowed at targetScope"),
    "scope-subscription": ("main.bicep", "targetScope = 'subscription'",
                           "targetScope = 'managementGroup'",
                           "main.bicep:", "subscription() is not allowed at targetScope"),
    "unknown-property": ("modules/storage.bicep", "    accessTier: 'Hot'\n",
                         "    accessTier: 'Hot'\n    fastMode: true\n",
                         "modules/storage.bicep:", "'properties.fastMode' is not a property"),
    "read-only-property": ("modules/backend.bicep", "        transport: 'auto'\n",
                           "        transport: 'auto'\n        fqdn: 'x.example'\n",
                           "modules/backend.bicep:", "'properties.configuration.ingress.fqdn'"),
    "required-property": ("modules/roles.bicep", "    principalId: backendsPrincipalId\n", "",
                          "modules/roles.bicep:", "'properties.principalId' is required"),
    "closed-enum": ("modules/storage.bicep", "accessTier: 'Hot'", "accessTier: 'Lukewarm'",
                    "modules/storage.bicep:", "'Lukewarm' is not one of: Cold, Cool, Hot"),
    "open-enum": ("modules/redis.bicep", "'Microsoft.Cache/redisEnterprise/databases@2025-07-01'",
                  "'Microsoft.Cache/redisEnterprise/databases@2025-04-01'",
                  "modules/redis.bicep:", "'NoCluster' is not a documented value"),
    "wrong-literal-type": ("modules/storage.bicep", "supportsHttpsTrafficOnly: true",
                           "supportsHttpsTrafficOnly: 'yes'",
                           "modules/storage.bicep:",
                           "'properties.supportsHttpsTrafficOnly' expects bool"),
    "undeclared-in-function": ("main.bicep", "'@Microsoft.KeyVault(VaultName=${vaultName};",
                               "'@Microsoft.KeyVault(VaultName=${keyVaultName};",
                               "main.bicep:", "'keyVaultName' is not declared (a function sees"),
    "resource-scope": ("main.bicep", "output AZURE_LOCATION string = location\n",
                       f"resource stray '{IDENTITY_TYPE}' = {{\n  name: 'stray'\n"
                       "  location: location\n}\noutput AZURE_LOCATION string = location\n",
                       "main.bicep:", f"stray: {IDENTITY_TYPE} cannot be deployed at targetScope"),
    "syntax": ("modules/identity.bicep", "output id string = identity.id",
               "output id string = identity.id +", "modules/identity.bicep:", "cannot parse"),
    "module-file": ("main.bicep", "'modules/identity.bicep' = {\n  name: 'gateway-identity'",
                    "'modules/identity2.bicep' = {\n  name: 'gateway-identity'",
                    "main.bicep:", "identity2.bicep not found"),
    "module-param-unknown": ("main.bicep", "    port: 8001\n", "    port: 8001\n    portt: 1\n",
                             "main.bicep:", "'portt' is not a param of backend.bicep"),
    "module-param-type": ("main.bicep", "    port: 8001\n", "    port: '8001'\n",
                          "main.bicep:", "'port' is int in backend.bicep, given string"),
    "module-param-missing": ("main.bicep", "    serviceName: 'pybackend'\n", "",
                             "main.bicep:", "required param 'serviceName' of backend.bicep"),
}
# Findings on another line than the edit: a value the new version lacks, a call the new scope
# forbids, an object that lost a required key.
ELSEWHERE = {"open-enum", "scope-subscription", "required-property", "module-param-missing",
             "syntax", "module-file"}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_rule_fails_on_a_broken_copy(tmp_path, case) -> None:
    relative, old, new, where, reason = BROKEN[case]
    folder = _copy(tmp_path)
    _break(folder, relative, old, new)
    found = _findings(folder)
    hits = [line for line in found if line.startswith(where) and reason in line]
    assert hits, found
    if case not in ELSEWHERE:  # the finding names the line of the broken text
        changed = (folder / relative).read_text().splitlines()
        quoted = re.findall(r"'([^']+)'", reason)
        token = quoted[0].split(".")[-1] if quoted else new.strip().splitlines()[0]
        lines = {i + 1 for i, text in enumerate(changed) if token in text}
        assert any(int(hit.split(":")[1]) in lines for hit in hits), (hits, lines)


def test_an_open_enum_value_passes_with_a_reasoned_allow_list_entry(tmp_path) -> None:
    folder = _copy(tmp_path)
    _break(folder, "modules/backend.bicep", "transport: 'auto'", "transport: 'quic'")
    assert any("'quic' is not a documented value" in line for line in _findings(folder))
    allow = folder / "bicep-check.allow.json"
    entries = json.loads(allow.read_text())
    entry = {"type": "Microsoft.App/containerApps", "value": "quic",
             "property": "properties.configuration.ingress.transport", "why": "a test"}
    entries["openEnumValues"].append(entry)
    allow.write_text(json.dumps(entries))
    assert _findings(folder) == []


def _make_check(folder: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scripts.bicep_check", str(folder)], cwd=ROOT, text=True,
        capture_output=True, env={**os.environ, **(env or {})}, check=False)


def test_the_command_exits_1_with_file_and_line_on_findings_and_0_when_clean(tmp_path) -> None:
    assert _make_check(INFRA).returncode == 0
    folder = _copy(tmp_path)
    _break(folder, "modules/storage.bicep", "accessTier: 'Hot'", "accessTier: 'Lukewarm'")
    result = _make_check(folder)
    assert result.returncode == 1
    assert "modules/storage.bicep:" in result.stdout and "closed-enum" in result.stdout


def test_missing_type_definitions_stop_with_a_clear_message(tmp_path) -> None:
    result = _make_check(INFRA, {ENV_VAR: str(tmp_path / "nowhere")})
    assert result.returncode == 2
    assert "no Azure type definitions found" in result.stderr and ENV_VAR in result.stderr


def test_a_resource_type_without_type_definitions_fails_unless_allow_listed(tmp_path) -> None:
    folder = _copy(tmp_path)
    (folder / "bicep-check.allow.json").unlink()
    found = _findings(folder)
    assert any("resource-type" in line and "Microsoft.Network/virtualNetworks@2024-05-01" in line
               for line in found), found


def test_an_allow_list_entry_without_a_reason_is_refused(tmp_path) -> None:
    folder = _copy(tmp_path)
    (folder / "bicep-check.allow.json").write_text(
        '{"uncheckedTypes": [{"type": "Microsoft.Network/virtualNetworks@2024-05-01"}]}')
    result = _make_check(folder)
    assert result.returncode == 2 and "gives no 'why'" in result.stderr


def test_make_infra_check_takes_another_folder(tmp_path) -> None:
    folder = _copy(tmp_path)
    _break(folder, "main.bicep", "rg.id, 'client-hash'", "resourceGroup().id, 'client-hash'")
    bad = subprocess.run(["make", "-s", "infra-check", f"BICEP_DIR={folder}"], cwd=ROOT,
                         text=True, capture_output=True, check=False)
    good = subprocess.run(["make", "-s", "infra-check"], cwd=ROOT, text=True,
                          capture_output=True, check=False)
    assert good.returncode == 0, good.stdout + good.stderr
    assert bad.returncode != 0 and "scope-function" in bad.stdout
