"""Parsing a Bicep file with tree-sitter-bicep and reading its declarations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

_PARSER = Parser(Language(tree_sitter_bicep.language()))

DECLARATIONS = {
    "parameter_declaration": "param",
    "variable_declaration": "var",
    "output_declaration": "output",
    "module_declaration": "module",
    "resource_declaration": "resource",
    "type_declaration": "type",
    "user_defined_function": "func",
}


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def text(node: Node) -> str:
    return node.text.decode("utf-8")


def string_value(node: Node) -> str | None:
    """The value of a string literal without interpolation, else None."""
    if node.type != "string" or any(c.type == "interpolation" for c in node.named_children):
        return None
    return "".join(text(c) for c in node.named_children)


def name_of(declaration: Node) -> Node | None:
    return next((c for c in declaration.named_children if c.type == "identifier"), None)


def body_of(declaration: Node) -> Node | None:
    """The object after `=` of a resource or module, through `if (...)` and `[for ...]`.

    Read from the end: the body comes last, after a condition or a loop's source, which may
    itself be an object literal."""
    for child in reversed(declaration.named_children):
        if child.type == "object":
            return child
        if child.type in ("if_statement", "for_statement"):
            return body_of(child)
    return None


def properties(obj: Node) -> list[tuple[str, Node, Node]]:
    """(key, key node, value node) of an object literal; nested resources are left out."""
    found = []
    for prop in obj.named_children:
        if prop.type != "object_property" or prop.named_children[0].type == "resource_declaration":
            continue
        key_node, value = prop.named_children[0], prop.named_children[-1]
        key = string_value(key_node) if key_node.type == "string" else text(key_node)
        if key is not None:
            found.append((key, key_node, value))
    return found


def property_map(obj: Node) -> dict[str, Node]:
    return {key: value for key, _, value in properties(obj)}


def has_keyword(node: Node, keyword: str) -> bool:
    return any(child.type == keyword for child in node.children)


@dataclass
class BicepFile:
    """One parsed file: its top-level declarations by name, and its targetScope."""

    path: Path
    root: Node
    declared: dict[str, tuple[str, Node]] = field(default_factory=dict)
    # Outputs have a namespace of their own (an output may share a param's name).
    outputs: dict[str, Node] = field(default_factory=dict)
    target_scope: str = "resourceGroup"

    @staticmethod
    def load(path: Path) -> BicepFile:
        root = _PARSER.parse(path.read_bytes()).root_node
        file = BicepFile(path, root)
        for node in root.named_children:
            if node.type == "target_scope_assignment":
                value = next((c for c in node.named_children if c.type == "string"), None)
                file.target_scope = (string_value(value) if value else None) or file.target_scope
            kind = DECLARATIONS.get(node.type)
            name = name_of(node) if kind else None
            if name is not None and kind == "output":
                file.outputs[text(name)] = node
            elif name is not None:
                file.declared[text(name)] = (kind, node)
        return file

    def of_kind(self, kind: str) -> dict[str, Node]:
        if kind == "output":
            return dict(self.outputs)
        return {name: node for name, (k, node) in self.declared.items() if k == kind}

    def syntax_errors(self) -> Iterator[Node]:
        return (n for n in walk(self.root) if n.type == "ERROR" or n.is_missing)
