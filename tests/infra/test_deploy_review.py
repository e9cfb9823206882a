"""Findings of a review against Microsoft's Flex Consumption samples, kept from coming back."""

from __future__ import annotations

import json
import re

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


def test_placeholder_image_is_served_on_the_port_it_listens_on() -> None:
    variables = BACKEND.declarations("variable")
    assert "empty(image)" in text(variables["listenPort"].value)
    assert text(variables["placeholderPort"].value) == "80"
    app = BACKEND.declarations("resource")["app"]
    ingress = object_properties(object_properties(object_properties(
        object_properties(app.body)["properties"])["configuration"])["ingress"])
    assert text(ingress["targetPort"]) == "listenPort"


def test_function_timeout_is_within_the_http_limit() -> None:
    value = json.loads((ROOT / "host.json").read_text())["functionTimeout"]
    hours, minutes, seconds = (int(part) for part in value.split(":"))
    assert hours * 3600 + minutes * 60 + seconds <= HTTP_LIMIT_S


def test_location_is_limited_to_flex_consumption_regions() -> None:
    source = (INFRA / "main.bicep").read_text()
    block = re.search(r"@allowed\(\[([^\]]*)\]\)\s*(?:@\w+\([^)]*\)\s*)*param location ", source,
                      re.S)
    assert block, "param location has no @allowed list"
    allowed = re.findall(r"'([a-z0-9]+)'", block.group(1))
    assert {"eastus", "northeurope", "swedencentral"} <= set(allowed)
    assert "chinaeast" not in allowed and len(allowed) == len(set(allowed))


def test_python_version_matches_the_local_toolchain() -> None:
    version = FUNCTION_APP.declarations("parameter")["pythonVersion"]
    assert string_value(version.value) == "3.13"
    assert "target-version = \"py313\"" in (ROOT / "pyproject.toml").read_text()
