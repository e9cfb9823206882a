"""Rules over names: every symbol used is declared, and scope functions suit the targetScope."""

from __future__ import annotations

from tree_sitter import Node

from .findings import Finding, at
from .tree import DECLARATIONS, BicepFile, name_of, text, walk

NAMESPACES = {"az", "sys"}
# Function called without arguments -> the target scopes where that is allowed (Bicep's
# scope functions: at subscription scope resourceGroup() needs a name, and so on).
NO_ARGUMENT_SCOPES = {
    "resourceGroup": {"resourceGroup"},
    "subscription": {"resourceGroup", "subscription"},
    "managementGroup": {"managementGroup"},
}
# Called with arguments -> where that is allowed.
WITH_ARGUMENT_SCOPES = {
    "resourceGroup": {"resourceGroup", "subscription"},
    "managementGroup": {"managementGroup", "tenant", "subscription", "resourceGroup"},
}


def _local_names(scope_node: Node) -> set[str]:
    """Names a for loop or lambda introduces, valid inside `scope_node`."""
    names: set[str] = set()
    if scope_node.type == "for_statement":
        for child in scope_node.children:
            if child.type == "in":
                break
            if child.type == "identifier":
                names.add(text(child))
            if child.type == "for_loop_parameters":
                names.update(text(c) for c in child.named_children)
    elif scope_node.type == "lambda_expression":
        for child in scope_node.children:
            if child.type == "=>":
                break
            names.update(text(n) for n in walk(child) if n.type == "identifier")
    return names


def _visible_locals(node: Node) -> set[str]:
    """Loop variables, lambda parameters and sibling nested resources in scope at `node`."""
    names: set[str] = set()
    parent = node.parent
    while parent is not None:
        if parent.type in ("for_statement", "lambda_expression"):
            names |= _local_names(parent)
        if parent.type == "arguments":  # the tree attaches `x => x.a` oddly: scope it to the call
            for arg in parent.named_children:
                names |= {n for c in walk(arg) if c.type == "lambda_expression"
                          for n in _local_names(c)}
        if parent.type == "object":
            for prop in parent.named_children:
                inner = prop.named_children[0] if prop.named_children else None
                if inner is not None and inner.type == "resource_declaration":
                    names.add(text(name_of(inner)))
        parent = parent.parent
    return names


def _is_reference(node: Node) -> bool:
    """Whether an identifier node names a symbol (not a key, a declaration or a function)."""
    parent = node.parent
    if parent is None:
        return False
    if parent.type in DECLARATIONS:
        return node != name_of(parent)
    if parent.type in ("object_property", "parameter"):
        return parent.named_children[0] != node
    if parent.type == "call_expression" and parent.child_by_field_name("function") == node:
        return False
    if parent.type == "resource_expression" and parent.named_children[0] != node:
        return False  # parent::child: the child is looked up in the parent, not in the file
    if parent.type == "member_expression" and text(node) in NAMESPACES:
        return False
    return not any(a.type in ("type", "lambda_expression") and _in_lambda_head(a, node)
                   for a in _ancestors(node))


def _ancestors(node: Node):
    parent = node.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def _in_lambda_head(ancestor: Node, node: Node) -> bool:
    if ancestor.type == "type":
        return True
    arrow = next((c for c in ancestor.children if c.type == "=>"), None)
    return arrow is not None and node.end_byte <= arrow.start_byte


def _function_scope(file: BicepFile, node: Node) -> set[str] | None:
    """Inside a user-defined function only its parameters and other functions are visible."""
    function = next((a for a in _ancestors(node) if a.type == "user_defined_function"), None)
    if function is None:
        return None
    params = next((c for c in function.named_children if c.type == "parameters"), None)
    names = {text(p.named_children[0]) for p in params.named_children} if params else set()
    return names | set(file.of_kind("func")) | set(file.of_kind("type"))


def undeclared(file: BicepFile) -> list[Finding]:
    """An identifier that names no param, var, resource, module, output, loop or lambda variable."""
    found = []
    for node in walk(file.root):
        if node.type != "identifier" or not _is_reference(node):
            continue
        name = text(node)
        in_function = _function_scope(file, node)
        visible = in_function if in_function is not None else set(file.declared)
        if name in visible or name in _visible_locals(node):
            continue
        reason = f"'{name}' is not declared" + (
            " (a function sees only its own parameters)" if in_function is not None else "")
        found.append(at(file.path, node, "undeclared-symbol", reason))
    return found


def _called_name(call: Node) -> str | None:
    function = call.child_by_field_name("function")
    if function is None:
        return None
    if function.type == "identifier":
        return text(function)
    if function.type == "member_expression":  # az.resourceGroup()
        base = function.child_by_field_name("object")
        if base is not None and text(base) == "az":
            return text(function.child_by_field_name("property"))
    return None


def scope_functions(file: BicepFile) -> list[Finding]:
    """resourceGroup(), subscription(), managementGroup() where the targetScope forbids them."""
    found = []
    scope = file.target_scope
    for node in walk(file.root):
        if node.type != "call_expression":
            continue
        name = _called_name(node)
        arguments = node.child_by_field_name("arguments")
        count = len(arguments.named_children) if arguments is not None else 0
        allowed = (NO_ARGUMENT_SCOPES if count == 0 else WITH_ARGUMENT_SCOPES).get(name or "")
        if allowed is not None and scope not in allowed:
            shape = f"{name}()" if count == 0 else f"{name}(...)"
            found.append(at(file.path, node, "scope-function",
                            f"{shape} is not allowed at targetScope '{scope}'"
                            f" (allowed at: {', '.join(sorted(allowed))})"))
    return found
