"""No secret in the templates or their outputs; storage, site and ingress require TLS and Entra."""

from __future__ import annotations

import re

import pytest

from .bicep_ast import INFRA, ROOT, BicepFile, bicep_paths, object_properties, text

# ARM's list* functions (listKeys, listSecrets, listCredentials, ...) return secrets.
LIST_FUNCTION = re.compile(r"\blist[A-Z]\w*\s*\(")
SECRET_MARKERS = ("AccountKey=", "SharedAccessSignature", "sharedKey", "InstrumentationKey=")
SECRET_OUTPUT_NAME = re.compile(r"key|secret|password|pwd|token|credential", re.I)

DEPLOY_FILES = [*bicep_paths(), INFRA / "main.parameters.json", ROOT / "azure.yaml"]


def _resources(type_prefix: str):
    for path in bicep_paths():
        for resource, _ in BicepFile.load(path).resources():
            kind = resource.type_string or ""
            if kind.startswith(type_prefix + "@") and not resource.is_existing:
                yield resource


def _properties(resource) -> dict:
    return object_properties(object_properties(resource.body)["properties"])


@pytest.mark.parametrize("path", DEPLOY_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_list_functions_or_key_material(path) -> None:
    source = path.read_text(encoding="utf-8")
    assert not LIST_FUNCTION.search(source), f"{path.name} calls an ARM list* function"
    for marker in SECRET_MARKERS:
        assert marker not in source, f"{path.name} contains {marker!r}"


def test_no_secure_params_or_secret_named_outputs() -> None:
    for path in bicep_paths():
        file = BicepFile.load(path)
        for name in file.declarations("output"):
            assert not SECRET_OUTPUT_NAME.search(name), f"{path.name}: output {name}"
        assert "@secure()" not in path.read_text(), f"{path.name}: this template needs no secret"


def test_storage_accepts_only_entra_over_tls12() -> None:
    accounts = list(_resources("Microsoft.Storage/storageAccounts"))
    assert accounts
    for account in accounts:
        props = _properties(account)
        assert text(props["allowSharedKeyAccess"]) == "false"
        assert text(props["allowBlobPublicAccess"]) == "false"
        assert text(props["supportsHttpsTrafficOnly"]) == "true"
        assert text(props["minimumTlsVersion"]) == "'TLS1_2'"


def test_function_app_is_https_only() -> None:
    sites = list(_resources("Microsoft.Web/sites"))
    assert sites
    for site in sites:
        assert text(_properties(site)["httpsOnly"]) == "true", site.name


def test_app_insights_refuses_key_ingestion() -> None:
    components = list(_resources("Microsoft.Insights/components"))
    assert components
    for component in components:
        assert text(_properties(component)["DisableLocalAuth"]) == "true"


def test_registry_has_no_admin_user() -> None:
    for registry in _resources("Microsoft.ContainerRegistry/registries"):
        assert text(_properties(registry)["adminUserEnabled"]) == "false"


def test_backend_ingress_is_https_only() -> None:
    apps = list(_resources("Microsoft.App/containerApps"))
    assert apps
    for app in apps:
        configuration = object_properties(_properties(app)["configuration"])
        ingress = object_properties(configuration["ingress"])
        assert text(ingress["allowInsecure"]) == "false", app.name
