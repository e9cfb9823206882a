"""The backends are reachable only through the gateway: they run in an internal Container Apps
environment (no public inbound address) in a virtual network that the Function App joins, and
their names resolve only there."""

from __future__ import annotations

from .bicep_ast import INFRA, MAIN, BicepFile, object_properties, text

MODULES = INFRA / "modules"


def _body(path, name: str) -> dict:
    resource = BicepFile.load(path).declarations("resource")[name]
    return object_properties(object_properties(resource.body)["properties"])


def _module_params(name: str) -> dict:
    module = BicepFile.load(MAIN).declarations("module")[name]
    return object_properties(object_properties(module.body)["params"])


def _backend_apps() -> list[str]:
    return [name for name, module in BicepFile.load(MAIN).declarations("module").items()
            if module.type_string == "modules/backend.bicep"]


def test_every_container_app_environment_is_internal() -> None:
    environments = [
        (path, resource) for path in INFRA.rglob("*.bicep")
        for resource, _ in BicepFile.load(path).resources()
        if (resource.type_string or "").startswith("Microsoft.App/managedEnvironments@")
    ]
    assert environments
    for path, resource in environments:
        props = object_properties(object_properties(resource.body)["properties"])
        vnet = object_properties(props["vnetConfiguration"])
        assert text(vnet["internal"]) == "true", f"{path.name}: {resource.name} is public"
        assert text(vnet["infrastructureSubnetId"]) == "infrastructureSubnetId"
    assert text(_module_params("containerEnv")["infrastructureSubnetId"]) == (
        "network.outputs.backendsSubnetId")


def test_every_backend_runs_in_that_environment_and_only_there() -> None:
    apps = _backend_apps()
    assert len(apps) == 2
    for name in apps:
        assert text(_module_params(name)["environmentId"]) == "containerEnv.outputs.id", name
    props = _body(MODULES / "backend.bicep", "app")
    assert text(props["environmentId"]) == "environmentId"
    ingress = object_properties(object_properties(props["configuration"])["ingress"])
    # In an internal environment "external" ingress is the network's private address; "false"
    # would hide the app from the gateway too.
    assert text(ingress["external"]) == "true"
    assert text(ingress["allowInsecure"]) == "false"


def test_the_gateway_joins_the_network_and_the_backend_names_resolve_there() -> None:
    site = _body(MODULES / "functionapp.bicep", "site")
    assert text(site["virtualNetworkSubnetId"]) == "virtualNetworkSubnetId"
    assert text(_module_params("functionApp")["virtualNetworkSubnetId"]) == (
        "network.outputs.gatewaySubnetId")
    dns = _module_params("backendDns")
    assert text(dns["zoneName"]) == "containerEnv.outputs.defaultDomain"
    assert text(dns["staticIp"]) == "containerEnv.outputs.staticIp"
    assert text(dns["vnetId"]) == "network.outputs.id"


def test_both_subnets_are_delegated_to_container_apps_environments() -> None:
    source = (MODULES / "network.bicep").read_text()
    assert source.count("delegations: appDelegation") == 2
    assert "serviceName: 'Microsoft.App/environments'" in source
