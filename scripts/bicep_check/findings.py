"""What a check reports: a place in a file and a reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tree_sitter import Node


@dataclass(frozen=True, order=True)
class Finding:
    path: Path
    line: int
    rule: str
    reason: str

    def render(self, root: Path) -> str:
        try:
            shown = self.path.resolve().relative_to(root.resolve())
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}: {self.rule}: {self.reason}"


def at(path: Path, node: Node, rule: str, reason: str) -> Finding:
    """A finding on the line where `node` starts (1-based, as editors count)."""
    return Finding(path, node.start_point[0] + 1, rule, reason)
