"""Rules over resource bodies, read against the resource's type at its API version: properties
the type has, read-only ones not set, required ones present, literals inside enumerations."""

from __future__ import annotations

from dataclasses import dataclass

from tree_sitter import Node

from .allow import AllowList
from .azure_types import READ_ONLY, REQUIRED, SCOPE_BITS, AzType, TypeIndex, string_choices
from .azure_types import object_properties as type_properties
from .findings import Finding, at
from .tree import BicepFile, body_of, has_keyword, name_of, properties, string_value, text, walk

# Keys of a resource body that are Bicep's, not the resource type's.
BICEP_KEYS = {"parent", "scope", "dependsOn"}
LITERAL_KINDS = {"string": "string", "number": "int", "boolean": "bool"}
TYPE_KINDS = {"StringType": "string", "IntegerType": "int", "BooleanType": "bool"}


@dataclass
class Context:
    file: BicepFile
    types: TypeIndex
    allow: AllowList
    resource_type: str  # without the API version, for allow-list entries
    found: list[Finding]

    def report(self, node: Node, rule: str, reason: str) -> None:
        self.found.append(at(self.file.path, node, rule, reason))


def full_type(declaration: Node) -> str | None:
    """`Namespace/type@version`; a nested child ('config') takes its parent's type and version."""
    declared = string_value(next(c for c in declaration.named_children if c.type == "string"))
    if declared is None or "@" in declared:
        return declared
    parent = declaration.parent
    while parent is not None and parent.type != "resource_declaration":
        parent = parent.parent
    outer = full_type(parent) if parent is not None else None
    if outer is None or "@" not in outer:
        return None
    base, version = outer.split("@", 1)
    return f"{base}/{declared}@{version}"


def check_resources(file: BicepFile, types: TypeIndex, allow: AllowList) -> list[Finding]:
    found: list[Finding] = []
    for node in walk(file.root):
        if node.type != "resource_declaration":
            continue
        kind = full_type(node)
        label = text(name_of(node))
        if kind is None:
            found.append(at(file.path, node, "resource-type", f"{label}: no API version"))
            continue
        resource = types.resource(kind)
        if resource is None:
            if not allow.unchecked_type(kind):
                found.append(at(file.path, node, "resource-type",
                                f"{label}: no type definition for {kind} in {types.folder}"))
            continue
        _check_scope(file, node, label, kind, resource, found)
        body = body_of(node)
        if body is not None and not has_keyword(node, "existing"):
            context = Context(file, types, allow, kind.split("@")[0], found)
            _check_object(context, body, resource.ref(resource.data["body"]), "", top=True)
    return found


def _check_scope(file, node, label, kind, resource: AzType, found) -> None:
    """A resource the file's targetScope cannot deploy (unless it names another scope)."""
    writable = resource.data.get("writableScopes", 0)
    nested = node.parent is not None and node.parent.type == "object_property"
    body = body_of(node)
    keys = {k for k, _, _ in properties(body)} if body is not None else set()
    if nested or "scope" in keys or "parent" in keys or has_keyword(node, "existing"):
        return
    bit = SCOPE_BITS.get(file.target_scope, 0)
    if writable and not writable & bit:
        found.append(at(file.path, node, "resource-scope",
                        f"{label}: {kind} cannot be deployed at targetScope '{file.target_scope}'"))


def _discriminator(obj: Node, kind: AzType) -> str | None:
    key = kind.data.get("discriminator")
    for name, _, value in properties(obj):
        if key and name.lower() == key.lower():
            return string_value(value)
    return None


def _check_object(ctx: Context, obj: Node, kind: AzType, path: str, top: bool = False) -> None:
    props = type_properties(kind, _discriminator(obj, kind))
    if props is None:
        return
    lowered = {name.lower(): (name, entry) for name, entry in props.items()}
    given = set()
    for key, key_node, value in properties(obj):
        if top and key in BICEP_KEYS:
            continue
        match = lowered.get(key.lower())
        where = f"{path}.{key}" if path else key
        if match is None:
            ctx.report(key_node, "unknown-property",
                       f"'{where}' is not a property of {ctx.resource_type} at this API version")
            continue
        given.add(match[0])
        entry = match[1]
        if entry.get("flags", 0) & READ_ONLY and not entry.get("flags", 0) & REQUIRED:
            ctx.report(key_node, "read-only-property", f"'{where}' is read-only")
            continue
        _check_value(ctx, value, kind.ref(entry["type"]), where)
    for name, entry in props.items():
        flags = entry.get("flags", 0)
        if flags & REQUIRED and not flags & READ_ONLY and name not in given:
            where = f"{path}.{name}" if path else name
            ctx.report(obj, "required-property", f"'{where}' is required and not set")


def _check_value(ctx: Context, value: Node, kind: AzType, path: str) -> None:
    if value.type == "object" and kind.kind in ("ObjectType", "DiscriminatedObjectType"):
        _check_object(ctx, value, kind, path)
    elif value.type in ("array", "for_statement") and kind.kind == "ArrayType":
        item = kind.ref(kind.data["itemType"])
        items = value.named_children if value.type == "array" else [body_of(value) or value]
        for element in items:
            _check_value(ctx, element, item, f"{path}[]")
    elif value.type == "ternary_expression":
        for branch in value.named_children[1:]:
            _check_value(ctx, branch, kind, path)
    elif value.type in LITERAL_KINDS:
        _check_literal(ctx, value, kind, path)


def _check_literal(ctx: Context, value: Node, kind: AzType, path: str) -> None:
    literal_kind = LITERAL_KINDS[value.type]
    choices = string_choices(kind)
    expected = "string" if choices is not None else TYPE_KINDS.get(kind.kind)
    if expected is not None and expected != literal_kind:
        ctx.report(value, "wrong-type", f"'{path}' expects {expected}, got {text(value)}")
        return
    literal = string_value(value)
    if choices is None or literal is None or literal in choices[0]:
        return
    listed = ", ".join(sorted(choices[0]))
    if not choices[1]:
        ctx.report(value, "closed-enum", f"'{path}' = '{literal}' is not one of: {listed}")
    elif not ctx.allow.open_enum_value(ctx.resource_type, path, literal):
        ctx.report(value, "open-enum",
                   f"'{path}' = '{literal}' is not a documented value ({listed}); add an entry"
                   " with a reason to the allow-list if the resource provider accepts it")
