"""The repository's allow-list: literal values outside an open enumeration, and resource types
without a type file, each with the reason it is accepted.

File: <bicep folder>/bicep-check.allow.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FILE_NAME = "bicep-check.allow.json"


class AllowListInvalid(Exception):
    """An entry without a reason, or a file that is not the expected shape."""


@dataclass
class AllowList:
    open_enum: set[tuple[str, str, str]] = field(default_factory=set)
    unchecked: set[str] = field(default_factory=set)

    @staticmethod
    def load(folder: Path) -> AllowList:
        path = folder / FILE_NAME
        if not path.is_file():
            return AllowList()
        data = json.loads(path.read_text(encoding="utf-8"))
        allow = AllowList()
        for entry in data.get("openEnumValues", []):
            _require_reason(path, entry)
            allow.open_enum.add((entry["type"].lower(), entry["property"], entry["value"]))
        for entry in data.get("uncheckedTypes", []):
            _require_reason(path, entry)
            allow.unchecked.add(entry["type"].lower())
        return allow

    def open_enum_value(self, resource_type: str, path: str, value: str) -> bool:
        return (resource_type.lower(), path, value) in self.open_enum

    def unchecked_type(self, full_type: str) -> bool:
        return full_type.lower() in self.unchecked


def _require_reason(path: Path, entry: dict) -> None:
    if not str(entry.get("why", "")).strip():
        raise AllowListInvalid(f"{path}: entry {entry} gives no 'why'")
