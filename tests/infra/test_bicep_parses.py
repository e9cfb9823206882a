"""Every template parses cleanly, and modules are wired to what they declare."""

from __future__ import annotations

import json

import pytest

from .bicep_ast import (
    INFRA,
    MAIN,
    BicepFile,
    bicep_paths,
    module_path,
    object_properties,
    text,
    walk,
)

PATHS = bicep_paths()


def test_templates_exist() -> None:
    assert MAIN in PATHS
    assert len(PATHS) > 1, "expected modules under infra/modules/"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: str(p.relative_to(INFRA)))
def test_template_parses_without_error_nodes(path) -> None:
    root = BicepFile.load(path).root
    bad = [
        f"line {node.start_point[0] + 1} {'MISSING' if node.is_missing else 'ERROR'}"
        f" near {text(node)[:40]!r}"
        for node in walk(root)
        if node.type == "ERROR" or node.is_missing
    ]
    assert not bad, f"{path.name}: " + "; ".join(bad)


def _module_calls():
    for path in PATHS:
        caller = BicepFile.load(path)
        for module in caller.declarations("module").values():
            yield caller, module


@pytest.mark.parametrize(
    ("caller", "module"), list(_module_calls()), ids=lambda v: getattr(v, "name", "")
)
def test_module_call_matches_module_params(caller, module) -> None:
    target = module_path(caller, module)
    assert target.is_file(), f"{caller.path.name}: module {module.name} -> missing {target}"
    declared = BicepFile.load(target).declarations("param")
    params = object_properties(module.body).get("params")
    given = set(object_properties(params)) if params is not None else set()
    unknown = given - set(declared)
    required = {name for name, param in declared.items() if param.value is None}
    assert not unknown, f"{module.name} passes undeclared params {sorted(unknown)}"
    assert required <= given, f"{module.name} misses required params {sorted(required - given)}"


def test_module_outputs_used_are_declared() -> None:
    for caller, module in _module_calls():
        outputs = BicepFile.load(module_path(caller, module)).declarations("output")
        for node in walk(caller.root):
            # <module>.outputs.<name>
            if node.type != "member_expression":
                continue
            inner = node.child_by_field_name("object")
            if inner is None or inner.type != "member_expression":
                continue
            base = inner.child_by_field_name("object")
            if (
                base is not None
                and text(base) == module.name
                and text(inner.child_by_field_name("property")) == "outputs"
            ):
                name = text(node.child_by_field_name("property"))
                assert name in outputs, f"{caller.path.name}: {module.name}.outputs.{name}"


def test_parameters_file_matches_main_params() -> None:
    declared = BicepFile.load(MAIN).declarations("param")
    given = set(json.loads((INFRA / "main.parameters.json").read_text())["parameters"])
    required = {name for name, param in declared.items() if param.value is None}
    assert given <= set(declared), f"unknown parameters {sorted(given - set(declared))}"
    assert required <= given, f"main.parameters.json misses {sorted(required - given)}"
