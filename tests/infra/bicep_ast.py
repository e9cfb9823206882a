"""Reading the Bicep templates through tree-sitter-bicep (no Bicep CLI or Azure needed).

`BicepFile` gives a file's declarations by kind and name. `object_entries` resolves an expression
to the keys of the object it builds, following variables, parameters (to the module call that
sets them, else their default) and `union(...)`; anything else fails loudly rather than dropping
keys, so a new shape of template makes the tests fail instead of pass vacuously.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tree_sitter import Node

from scripts.bicep_check import tree
from scripts.bicep_check.tree import (
    body_of,
    has_keyword,
    properties,
    string_value,
    text,
    walk,
)

__all__ = ["INFRA", "MAIN", "ROOT", "BicepFile", "Declaration", "app_settings", "bicep_paths",
           "callers_of", "has_api_version", "module_path", "object_entries", "object_properties",
           "string_value", "text", "walk"]

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"

_API_VERSION = re.compile(r"@\d{4}-\d{2}-\d{2}(-preview)?$")


def bicep_paths() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def object_properties(node: Node) -> dict[str, Node]:
    """Key to value node of an object literal (keys may be identifiers or quoted strings); a
    computed key fails the test instead of being left out as the checker leaves it."""
    assert node.type == "object", f"expected an object, got {node.type}: {text(node)[:80]}"
    found = properties(node)
    plain = [p for p in node.named_children if p.type == "object_property"
             and p.named_children[0].type != "resource_declaration"]
    assert len(found) == len(plain), f"computed key in {text(node)[:80]}"
    return {key: value for key, _, value in found}


@dataclass(frozen=True)
class Declaration:
    kind: str  # the Bicep keyword: param, var, output, module, resource
    name: str
    node: Node

    @property
    def type_string(self) -> str | None:
        """Resource type (with @api-version) or module path."""
        for child in self.node.named_children:
            if child.type == "string":
                return string_value(child)
        return None

    @property
    def body(self) -> Node | None:
        """The object after `=`, through `if (...)` and `[for ...]`."""
        return body_of(self.node)

    @property
    def is_existing(self) -> bool:
        return has_keyword(self.node, "existing")

    @property
    def value(self) -> Node | None:
        """A parameter's default or a variable's or output's value."""
        if "=" not in [c.type for c in self.node.children]:
            return None
        return self.node.named_children[-1]


@dataclass(frozen=True)
class BicepFile:
    """A template as the checker parses it (scripts/bicep_check/tree.py), its declarations read
    as `Declaration`s; files are parsed once per test run."""

    parsed: tree.BicepFile

    @property
    def path(self) -> Path:
        return self.parsed.path

    @property
    def root(self) -> Node:
        return self.parsed.root

    @staticmethod
    @cache
    def load(path: Path) -> BicepFile:
        return BicepFile(tree.BicepFile.load(Path(path)))

    def declarations(self, kind: str) -> dict[str, Declaration]:
        """Top-level declarations of one kind (param, var, output, module, resource) by name."""
        return {name: Declaration(kind, name, node)
                for name, node in self.parsed.of_kind(kind).items()}

    def resources(self) -> list[tuple[Declaration, bool]]:
        """Every resource declaration, nested ones too, with whether it is nested."""
        found = []
        for node in walk(self.root):
            if node.type == "resource_declaration":
                name = next(c for c in node.named_children if c.type == "identifier")
                nested = _has_ancestor(node, "resource_declaration")
                found.append((Declaration("resource", text(name), node), nested))
        return found


def _has_ancestor(node: Node, kind: str) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.type == kind:
            return True
        parent = parent.parent
    return False


def module_path(caller: BicepFile, module: Declaration) -> Path:
    return (caller.path.parent / module.type_string).resolve()


def callers_of(module_file: Path) -> list[tuple[BicepFile, Declaration]]:
    """(file, module declaration) pairs, over all templates, that deploy `module_file`."""
    calls = []
    for path in bicep_paths():
        caller = BicepFile.load(path)
        for module in caller.declarations("module").values():
            if module_path(caller, module) == module_file.resolve():
                calls.append((caller, module))
    return calls


def object_entries(file: BicepFile, expr: Node) -> dict[str, tuple[BicepFile, Node]]:
    """Keys of the object `expr` evaluates to, each with the file and node of its value."""
    if expr.type == "object":
        return {key: (file, value) for key, value in object_properties(expr).items()}
    if expr.type == "call_expression" and text(expr.child_by_field_name("function")) == "union":
        merged: dict[str, tuple[BicepFile, Node]] = {}
        for arg in expr.child_by_field_name("arguments").named_children:
            merged.update(object_entries(file, arg))
        return merged
    if expr.type == "identifier":
        name = text(expr)
        variable = file.declarations("var").get(name)
        if variable is not None:
            return object_entries(file, variable.value)
        param = file.declarations("param").get(name)
        if param is not None:
            return _param_entries(file, param)
    raise AssertionError(f"{file.path.name}: cannot resolve {text(expr)[:80]!r} to an object")


def _param_entries(file: BicepFile, param: Declaration) -> dict[str, tuple[BicepFile, Node]]:
    calls = callers_of(file.path)
    if not calls:  # the entry template: use the default
        assert param.value is not None, f"{file.path.name}: param {param.name} has no default"
        return object_entries(file, param.value)
    merged: dict[str, tuple[BicepFile, Node]] = {}
    for caller, module in calls:
        given = object_properties(module.body).get("params")
        value = object_properties(given).get(param.name) if given is not None else None
        if value is not None:
            merged.update(object_entries(caller, value))
        elif param.value is not None:
            merged.update(object_entries(file, param.value))
    return merged


def app_settings() -> dict[str, tuple[BicepFile, Node]]:
    """Every Function App setting name the templates set, with its value node."""
    settings: dict[str, tuple[BicepFile, Node]] = {}
    for path in bicep_paths():
        file = BicepFile.load(path)
        for resource, _nested in file.resources():
            kind = resource.type_string or ""
            if kind != "config" and not kind.startswith("Microsoft.Web/sites/config@"):
                continue
            body = object_properties(resource.body)
            if string_value(body["name"]) == "appsettings":
                settings.update(object_entries(file, body["properties"]))
    return settings


def has_api_version(type_string: str) -> bool:
    return bool(_API_VERSION.search(type_string))
