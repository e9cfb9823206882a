"""Findings of a review against Microsoft's Flex Consumption samples, kept from coming back."""

from __future__ import annotations

import json
import sys

from .bicep_ast import INFRA, ROOT, BicepFile, object_properties, string_value, text, walk

MAIN = BicepFile.load(INFRA / "main.bicep")
ROLES = BicepFile.load(INFRA / "modules" / "roles.bicep")
BACKEND = BicepFile.load(INFRA / "modules" / "backend.bicep")
FUNCTION_APP = BicepFile.load(INFRA / "modules" / "functionapp.bicep")
QUEUE_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
HTTP_LIMIT_S = 230  # the Functions front end ends any HTTP request after this


def test_operator_principal_type_comes_from_azd_not_a_literal() -> None:
    operator = ROLES.declarations("resource")["operatorTables"]
    props = object_properties(object_properties(operator.body)["properties"])
    assert text(props["principalType"]) == "operatorPrincipalType"
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params["principalType"]["value"].startswith("${AZURE_PRINCIPAL_TYPE")
    roles_module = MAIN.declarations("module")["roles"]
    passed = object_properties(object_properties(roles_module.body)["params"])
    assert text(passed["operatorPrincipalType"]) == "principalType"


def test_gateway_identity_gets_no_queue_role() -> None:
    literals = {string_value(n) for n in walk(ROLES.root) if n.type == "string"}
    assert QUEUE_CONTRIBUTOR not in literals


def _backend_container() -> tuple[dict, dict]:
    """(ingress properties, container env name -> value node) of the backend container app."""
    app = BACKEND.declarations("resource")["app"]
    props = object_properties(object_properties(app.body)["properties"])
    ingress = object_properties(object_properties(props["configuration"])["ingress"])
    template = object_properties(props["template"])
    container = next(n for n in template["containers"].named_children if n.type == "object")
    env = {}
    for item in object_properties(container)["env"].named_children:
        if item.type == "object":
            entry = object_properties(item)
            env[string_value(entry["name"])] = entry["value"]
    return ingress, env


def _depends_on_image(node) -> bool:
    """Whether an expression reads the image parameter, directly or through variables."""
    variables = BACKEND.declarations("var")
    for child in walk(node):
        if child.type == "identifier" and text(child) == "image":
            return True
        if child.type == "identifier" and text(child) in variables and child != node:
            if _depends_on_image(variables[text(child)].value):
                return True
        if child.type == "identifier" and child == node and text(child) in variables:
            return _depends_on_image(variables[text(child)].value)
    return False


def test_every_revision_listens_on_the_port_the_ingress_targets_whatever_the_image() -> None:
    # azd deploy keeps a revision's env and ingress and swaps only its image (docs/DEPLOY.md,
    # azd's AddRevision): so the port given must not depend on which image the template had.
    ingress, env = _backend_container()
    assert text(ingress["targetPort"]) == "port"
    assert text(env["PORT"]) == "string(port)"
    for node in (ingress["targetPort"], env["PORT"], env["ASPNETCORE_HTTP_PORTS"]):
        assert not _depends_on_image(node), text(node)
    # The placeholder (ASP.NET sample) listens on ASPNETCORE_HTTP_PORTS: the same port.
    assert text(env["ASPNETCORE_HTTP_PORTS"]) == "string(port)"
    placeholder = string_value(BACKEND.declarations("var")["placeholderImage"].value)
    assert placeholder.startswith("mcr.microsoft.com/dotnet/samples:aspnetapp")


def test_backend_ports_are_ones_a_non_root_image_can_bind() -> None:
    ports = []
    for module in MAIN.declarations("module").values():
        params = object_properties(module.body).get("params")
        if params is not None and "port" in object_properties(params):
            ports.append(int(text(object_properties(params)["port"])))
    assert len(ports) == 2 and all(port >= 1024 for port in ports), ports
    for dockerfile in (ROOT / "services").glob("*/Dockerfile"):
        users = [line.split()[1] for line in dockerfile.read_text().splitlines()
                 if line.startswith("USER ")]
        assert users and users[-1] not in ("root", "0"), f"{dockerfile}: runs as root"


def test_function_timeout_is_within_the_http_limit() -> None:
    value = json.loads((ROOT / "host.json").read_text())["functionTimeout"]
    hours, minutes, seconds = (int(part) for part in value.split(":"))
    assert hours * 3600 + minutes * 60 + seconds <= HTTP_LIMIT_S


def test_deployed_python_is_the_one_the_tests_run_on() -> None:
    version = FUNCTION_APP.declarations("param")["pythonVersion"]
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert string_value(version.value) == running, "deploy the Python the tests ran on"
