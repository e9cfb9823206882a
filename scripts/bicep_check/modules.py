"""Rules over module calls: every param passed exists in the module, has the declared type where
the caller's value has a known type, and every required param is passed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tree_sitter import Node

from .findings import Finding, at
from .tree import BicepFile, body_of, name_of, property_map, string_value, text

LITERAL_TYPES = {"string": "string", "number": "int", "boolean": "bool", "object": "object",
                 "array": "array", "for_statement": "array"}
# Functions whose result type does not depend on their arguments.
FUNCTION_TYPES = {
    "string": "string", "int": "int", "bool": "bool", "empty": "bool", "contains": "bool",
    "toLower": "string", "toUpper": "string", "uniqueString": "string", "guid": "string",
    "format": "string", "concat": None, "length": "int", "union": "object", "json": None,
    "subscriptionResourceId": "string", "resourceId": "string", "split": "array",
    "range": "array", "array": "array", "substring": "string", "replace": "string",
}


def declared_type(declaration: Node) -> str | None:
    """A param's or output's type: string/int/bool/object/array, else None (user types, unions)."""
    type_node = next((c for c in declaration.named_children if c.type == "type"), None)
    if type_node is None:
        return None
    inner = type_node.named_children[0] if type_node.named_children else type_node
    if inner.type == "nullable_type":
        inner = inner.named_children[0]
    return text(inner) if inner.type == "primitive_type" else None


def is_optional(declaration: Node) -> bool:
    """A param with a default or a nullable type (`string?`) need not be passed."""
    if any(c.type == "=" for c in declaration.children):
        return True
    type_node = next((c for c in declaration.named_children if c.type == "type"), None)
    return type_node is not None and any(c.type == "nullable_type" for c in type_node.children)


def expression_type(file: BicepFile, node: Node, load: Callable[[Path], BicepFile]) -> str | None:
    """The type of an expression where it is evident; None when it is not."""
    if node.type in LITERAL_TYPES:
        return LITERAL_TYPES[node.type]
    if node.type == "identifier":
        kind, declaration = file.declared.get(text(node), (None, None))
        if kind == "param":
            return declared_type(declaration)
        if kind == "var":
            return expression_type(file, declaration.named_children[-1], load)
        return None
    if node.type == "call_expression":
        function = node.child_by_field_name("function")
        return FUNCTION_TYPES.get(text(function)) if function is not None else None
    if node.type == "member_expression":
        return _module_output_type(file, node, load)
    return None


def _module_output_type(file, node: Node, load) -> str | None:
    """`<module>.outputs.<name>`: the output's declared type in the module file."""
    inner = node.child_by_field_name("object")
    if inner is None or inner.type != "member_expression":
        return None
    base = inner.child_by_field_name("object")
    if base is None or text(inner.child_by_field_name("property")) != "outputs":
        return None
    kind, declaration = file.declared.get(text(base), (None, None))
    target = module_file(file, declaration) if kind == "module" else None
    if target is None or not target.is_file():
        return None
    output = load(target).of_kind("output").get(text(node.child_by_field_name("property")))
    return declared_type(output) if output is not None else None


def module_file(file: BicepFile, declaration: Node) -> Path | None:
    source = string_value(next(c for c in declaration.named_children if c.type == "string"))
    if source is None or ":" in source:  # registry or template-spec references
        return None
    return (file.path.parent / source).resolve()


def check_modules(file: BicepFile, load: Callable[[Path], BicepFile]) -> list[Finding]:
    found: list[Finding] = []
    for name, declaration in file.of_kind("module").items():
        target = module_file(file, declaration)
        if target is None:
            continue
        if not target.is_file():
            found.append(at(file.path, declaration, "module-file", f"{name}: {target} not found"))
            continue
        body = body_of(declaration)
        given = property_map(body).get("params") if body is not None else None
        passed = property_map(given) if given is not None and given.type == "object" else {}
        found += _check_call(file, name, declaration, passed, load(target), load)
    return found


def _check_call(file, name, declaration, passed: dict[str, Node], module: BicepFile, load):
    found = []
    params = module.of_kind("param")
    for key, value in passed.items():
        param = params.get(key)
        if param is None:
            found.append(at(file.path, value, "module-param",
                            f"{name}: '{key}' is not a param of {module.path.name}"))
            continue
        want, got = declared_type(param), expression_type(file, value, load)
        if want and got and want != got:
            found.append(at(file.path, value, "module-param-type",
                            f"{name}: '{key}' is {want} in {module.path.name}, given {got}"))
    for key, param in params.items():
        if key not in passed and not is_optional(param):
            found.append(at(file.path, declaration, "module-param-missing",
                            f"{name}: required param '{key}' of {module.path.name} not passed"))
    return found


__all__ = ["check_modules", "declared_type", "name_of"]
