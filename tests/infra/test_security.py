"""No secret in the templates or their outputs; storage, site and ingress require TLS and Entra."""

from __future__ import annotations

import re
import sys
from dataclasses import fields

import pytest

from .bicep_ast import (
    INFRA,
    ROOT,
    BicepFile,
    app_settings,
    bicep_paths,
    object_properties,
    string_value,
    text,
    walk,
)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from function_app.settings.specs import Settings

# ARM's list* functions (listKeys, listSecrets, listCredentials, ...) return secrets.
LIST_FUNCTION = re.compile(r"\blist[A-Z]\w*\s*\(")
SECRET_MARKERS = ("AccountKey=", "SharedAccessSignature", "sharedKey", "InstrumentationKey=")
SECRET_OUTPUT_NAME = re.compile(r"key|secret|password|pwd|token|credential", re.I)
# Parameters that carry secrets (or objects that may): each must be @secure().
SECRET_PARAM_NAME = re.compile(r"(keys?|secrets?|seed|password|pwd|token|connection|settings)$",
                               re.I)
# Settings the gateway marks secret (repr=False in Settings) ...
SECRET_SPECS = {f.metadata["spec"].name for f in fields(Settings)
                if "spec" in f.metadata and not f.repr}
# ... that hold no secret in Azure, where every client signs in with Entra ID.
NOT_SECRET_IN_AZURE = {
    "CACHE_REDIS_URL": "rediss://host:10000 without a password; the identity signs in",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "local auth is off: ingestion needs an Entra token",
}
MAIN_PATH = INFRA / "main.bicep"

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


def _decorators(declaration) -> set[str]:
    """Names of the decorators just above a declaration (@secure(), @description(...), ...)."""
    previous = declaration.node.prev_named_sibling
    while previous is not None and previous.type == "comment":
        previous = previous.prev_named_sibling
    if previous is None or previous.type != "decorators":
        return set()
    return {text(d.named_children[0].child_by_field_name("function")) for d in
            previous.named_children if d.type == "decorator"}


def _secret_params():
    for path in bicep_paths():
        for name, param in BicepFile.load(path).declarations("param").items():
            if SECRET_PARAM_NAME.search(name):
                yield path, name, param


def test_every_secret_parameter_is_secure() -> None:
    found = list(_secret_params())
    assert {name for _, name, _ in found} >= {"modelApiKeys", "gatewaySettings", "appSettings",
                                              "secrets"}
    for path, name, param in found:
        assert "secure" in _decorators(param), f"{path.name}: param {name} needs @secure()"


def test_no_output_returns_a_secure_parameter_or_secret_named_value() -> None:
    for path in bicep_paths():
        file = BicepFile.load(path)
        secure = {name for name, param in file.declarations("param").items()
                  if "secure" in _decorators(param)}
        for name, output in file.declarations("output").items():
            # A resource's name (KEY_VAULT_NAME) is not a secret; anything else named so is.
            assert name.endswith("_NAME") or not SECRET_OUTPUT_NAME.search(name), name
            used = {text(n) for n in walk(output.node) if n.type == "identifier"}
            assert not used & (secure | {"vaultSecrets"}), f"{path.name}: output {name}"


def test_secret_settings_reach_the_app_only_as_key_vault_references() -> None:
    settings = app_settings()
    checked = 0
    for name in SECRET_SPECS & set(settings):
        if name in NOT_SECRET_IN_AZURE:
            continue
        _, node = settings[name]
        if string_value(node) == "":  # unset in Azure (CACHE_BLOB_CONNECTION: the identity)
            continue
        assert node.type == "call_expression", f"{name}: {text(node)[:60]}"
        assert text(node.child_by_field_name("function")) == "keyVaultReference", name
        checked += 1
    assert checked >= 4
    for name in ("MCP_SESSION_KEY", "RESPONSES_ID_SECRET"):  # must be set, the same everywhere
        assert text(settings[name][1].child_by_field_name("function")) == "keyVaultReference"
    func = BicepFile.load(MAIN_PATH).root
    body = next(n for n in func.named_children if n.type == "user_defined_function")
    assert "@Microsoft.KeyVault(VaultName=" in text(body)


def test_key_vault_is_rbac_and_the_gateway_identity_reads_its_secrets() -> None:
    vaults = list(_resources("Microsoft.KeyVault/vaults"))
    assert len(vaults) == 1
    assert text(_properties(vaults[0])["enableRbacAuthorization"]) == "true"
    roles = BicepFile.load(INFRA / "modules/roles.bicep").declarations("resource")
    grant = object_properties(roles["gatewaySecrets"].body)
    assert text(grant["scope"]) == "vault"
    props = object_properties(grant["properties"])
    assert text(props["principalId"]) == "gatewayPrincipalId"
    assert "roleIds.keyVaultSecretsUser" in text(props["roleDefinitionId"])
    site = next(_resources("Microsoft.Web/sites"))
    assert text(_properties(site)["keyVaultReferenceIdentity"]) == "identityId"


def test_basic_publishing_credentials_are_off() -> None:
    policies = {}
    for path in bicep_paths():
        for resource, _ in BicepFile.load(path).resources():
            if resource.type_string == "basicPublishingCredentialsPolicies":
                body = object_properties(resource.body)
                policies[string_value(body["name"])] = text(
                    object_properties(body["properties"])["allow"])
    assert policies == {"ftp": "false", "scm": "false"}


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
    registries = list(_resources("Microsoft.ContainerRegistry/registries"))
    assert registries, "the template creates the backends' registry"
    for registry in registries:
        assert text(_properties(registry)["adminUserEnabled"]) == "false"


def test_backend_ingress_is_https_only() -> None:
    apps = list(_resources("Microsoft.App/containerApps"))
    assert apps
    for app in apps:
        configuration = object_properties(_properties(app)["configuration"])
        ingress = object_properties(configuration["ingress"])
        assert text(ingress["allowInsecure"]) == "false", app.name
