"""The import map of function_app/: which rooms import which, read from the source with `ast`.

Rooms are the packages directly under function_app/ (http/, ratelimit/, wiring/, ...) and its
top-level modules (app.py, worker_http.py). An arrow A -> B is any import, in any module of A, of
a module of B: at module level, inside a function, or under `if TYPE_CHECKING:` (a type import
still ties the two rooms together). Relative imports are resolved first.

The rule, from the top down:
- `app.py` (the Functions app) and `admin/` (the admin CLI) are the entry points; they may
  import anything.
- `wiring/` is the one place where typed settings become components; it imports settings/ and
  the components.
- `settings/` parses the app settings once into typed values; it may import components for their
  config types and parsers (settings -> component), never wiring/.
- Every other room is a component: it imports neither `function_app.settings` nor
  `function_app.wiring`, so a component is built from typed values alone.
And no cycle between rooms, whatever their kind.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "function_app"
ENTRY_POINTS = frozenset({"app", "admin"})
NOT_COMPONENTS = ENTRY_POINTS | {"settings", "wiring"}

Arrows = dict[str, dict[str, set[str]]]  # room -> room it imports -> the importing modules


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """The absolute names an import statement names (`from p import m` also names `p.m`)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            here = module.split(".") if is_package else module.split(".")[:-1]
            here = here[:len(here) - (node.level - 1)]
            base = ".".join([*here, base] if base else here)
        yield base
        yield from (f"{base}.{alias.name}" for alias in node.names)


def room(module: str) -> str | None:
    """The room of a function_app module: its first name under the package."""
    parts = module.split(".")
    return parts[1] if parts[0] == PACKAGE and len(parts) > 1 else None


def import_map(root: Path = ROOT) -> Arrows:
    rooms = {p.stem if p.is_file() else p.name for p in (root / PACKAGE).iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    arrows: Arrows = {name: {} for name in rooms}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        module = module_name(path, root)
        source = room(module)
        if source is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for name in imported(node, module, path.name == "__init__.py"):
                target = room(name)
                if target in rooms and target != source:
                    arrows[source].setdefault(target, set()).add(module)
    return arrows


def a_cycle(arrows: Arrows) -> list[str] | None:
    """One cycle of rooms (first room repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        path.append(name)
        for target in sorted(arrows.get(name, {})):
            if state.get(target) == "open":
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)) is not None:
                return found
        path.pop()
        state[name] = "done"
        return None

    for name in sorted(arrows):
        if name not in state and (found := visit(name)) is not None:
            return found
    return None


def arrows_into_the_top(arrows: Arrows) -> list[str]:
    """Component -> settings/ or wiring/ arrows, each with the modules that draw it."""
    return [f"{source} -> {target}: {sorted(modules)}"
            for source, targets in sorted(arrows.items()) if source not in NOT_COMPONENTS
            for target, modules in sorted(targets.items()) if target in ("settings", "wiring")]


def test_no_cycle_between_packages_and_top_level_modules():
    arrows = import_map()
    cycle = a_cycle(arrows)
    drawn = [f"{a} -> {b}: {sorted(arrows[a][b])}" for a, b in pairwise(cycle)] \
        if cycle else []
    assert cycle is None, "import cycle:\n" + "\n".join(drawn)


def test_no_component_imports_settings_or_wiring():
    assert arrows_into_the_top(import_map()) == []


def test_the_map_sees_every_kind_of_import(tmp_path):
    """Relative, absolute, function-level and TYPE_CHECKING imports all draw an arrow."""
    package = tmp_path / PACKAGE
    for name in ("a", "b", "c", "d", "e"):
        (package / name).mkdir(parents=True)
        (package / name / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "top.py").write_text("from .a import x\n")
    (package / "a" / "x.py").write_text("from ..b.y import z\n")
    (package / "b" / "y.py").write_text("def f():\n    import function_app.c.q\n")
    (package / "c" / "q.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from function_app import d\n")
    (package / "d" / "__init__.py").write_text("from .. import a\nfrom function_app.e import m\n")
    arrows = import_map(tmp_path)
    assert {s: set(t) for s, t in arrows.items() if t} == {
        "top": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"d"}, "d": {"a", "e"}}
    assert a_cycle(arrows) == ["a", "b", "c", "d", "a"]
    arrows["d"].pop("a")
    assert a_cycle(arrows) is None
    arrows["e"]["settings"] = {"function_app.e.m"}
    assert arrows_into_the_top(arrows) == ["e -> settings: ['function_app.e.m']"]
