"""Role assignments use only the expected built-in roles; every resource names its API version."""

from __future__ import annotations

import re

from .bicep_ast import (
    BicepFile,
    bicep_paths,
    has_api_version,
    object_properties,
    string_value,
    text,
    walk,
)

# Built-in role definition ids (the same in every tenant).
BUILT_IN_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    # The backends' identity pulls their images from the template's registry.
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    # The gateway reads its Key Vault references; the optional operator sets upstream keys.
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    # The gateway's identity calls the optional Azure OpenAI account (modules/openai.bicep).
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd": "Cognitive Services OpenAI User",
    # The gateway calls the optional Content Safety account with its identity (guardrails).
    "a97b65f3-24c7-4388-baec-2e87135dc908": "Cognitive Services User",
}
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments@"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def _string_literals():
    for path in bicep_paths():
        for node in walk(BicepFile.load(path).root):
            if node.type == "string":
                value = string_value(node)
                if value is not None:
                    yield path, value


def test_role_ids_are_exactly_the_built_in_ones() -> None:
    used = {value.lower() for _, value in _string_literals() if GUID.match(value)}
    expected = set(BUILT_IN_ROLES)
    assert used == expected, f"extra {sorted(used - expected)}, unused {sorted(expected - used)}"


def test_role_assignments_reference_role_definitions_by_subscription_resource_id() -> None:
    assignments = 0
    for path in bicep_paths():
        for resource, _ in BicepFile.load(path).resources():
            if not (resource.type_string or "").startswith(ROLE_ASSIGNMENT):
                continue
            assignments += 1
            props = object_properties(object_properties(resource.body)["properties"])
            role = props["roleDefinitionId"]
            assert role.type == "call_expression", text(role)
            assert text(role.child_by_field_name("function")) == "subscriptionResourceId"
            first = role.child_by_field_name("arguments").named_children[0]
            assert string_value(first) == "Microsoft.Authorization/roleDefinitions"
            assert "principalType" in props, f"{resource.name}: avoids replication-delay failures"
    assert assignments >= 4


def test_every_top_level_resource_declares_an_api_version() -> None:
    missing = [
        f"{path.name}: {resource.name} {resource.type_string!r}"
        for path in bicep_paths()
        for resource, nested in BicepFile.load(path).resources()
        # A nested child resource ('config', 'containers') inherits its parent's version.
        if not nested and not has_api_version(resource.type_string or "")
    ]
    assert not missing, missing
