"""Azure's resource type definitions (the bicep-types format), as the Bicep compiler loads them.

Each file is a JSON array of types; `{"$ref": "#/<i>"}` points into the same array. Where the
folder is: AZURE_TYPES_DIR if set, else `<repo>/../shared/azure-types` (CI copies shared/ beside
the clone), else the same beside the main checkout of a git worktree.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

REQUIRED, READ_ONLY = 1, 2
ENV_VAR = "AZURE_TYPES_DIR"
REPO = Path(__file__).resolve().parents[2]
# Bits of a ResourceType's writableScopes.
SCOPE_BITS = {"tenant": 1, "managementGroup": 2, "subscription": 4, "resourceGroup": 8}


class TypesMissing(Exception):
    """The type definitions folder cannot be found; the message says where it was looked for."""


@dataclass(frozen=True)
class AzType:
    """One entry of a type file; `ref` follows a `$ref` within the same file."""

    entries: list
    index: int

    @property
    def data(self) -> dict:
        return self.entries[self.index]

    @property
    def kind(self) -> str:
        return self.data["$type"]

    def ref(self, pointer: dict) -> AzType:
        return AzType(self.entries, int(pointer["$ref"].split("/")[-1]))

    def union_members(self) -> list[AzType]:
        return [self.ref(element) for element in self.data.get("elements", [])]


def _worktree_main(repo: Path) -> Path | None:
    """The main checkout of a git worktree (its .git is a file naming .../.git/worktrees/x)."""
    marker = repo / ".git"
    if not marker.is_file():
        return None
    gitdir = Path(marker.read_text().split("gitdir:", 1)[-1].strip())
    return gitdir.parents[2] if gitdir.parent.name == "worktrees" else None


def types_folder(repo: Path = REPO) -> Path:
    """The folder of type files, or TypesMissing naming every place looked at."""
    override = os.environ.get(ENV_VAR)
    candidates = [Path(override)] if override else []
    if not override:
        candidates.append(repo.parent / "shared" / "azure-types")
        main = _worktree_main(repo)
        if main is not None:
            candidates.append(main.parent / "shared" / "azure-types")
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.json")):
            return folder
    looked = ", ".join(str(c) for c in candidates)
    raise TypesMissing(
        f"no Azure type definitions found (looked in {looked}); copy shared/azure-types beside"
        f" the repository or set {ENV_VAR} to the folder"
    )


class TypeIndex:
    """Resource types by `Namespace/type@apiVersion` (case-insensitive), over every file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._resources: dict[str, list[AzType]] = {}
        for path in sorted(folder.glob("*.json")):
            entries = json.loads(path.read_text(encoding="utf-8"))
            for index, entry in enumerate(entries):
                if entry.get("$type") == "ResourceType":
                    key = entry["name"].lower()
                    self._resources.setdefault(key, []).append(AzType(entries, index))

    def resource(self, full_type: str) -> AzType | None:
        found = self._resources.get(full_type.lower())
        return found[0] if found else None

    def body(self, full_type: str) -> AzType | None:
        resource = self.resource(full_type)
        return resource.ref(resource.data["body"]) if resource else None


def object_properties(kind: AzType, discriminator_value: str | None) -> dict[str, dict] | None:
    """Property name -> entry ({type, flags}) of an object type; None when any key is accepted."""
    if kind.kind == "ObjectType":
        if "additionalProperties" in kind.data:
            return None
        return dict(kind.data.get("properties", {}))
    if kind.kind != "DiscriminatedObjectType":
        return None
    merged = dict(kind.data.get("baseProperties", {}))
    elements = kind.data.get("elements", {})
    lowered = {k.lower(): v for k, v in elements.items()}
    chosen = [lowered[discriminator_value.lower()]] if (
        discriminator_value and discriminator_value.lower() in lowered) else list(elements.values())
    for pointer in chosen:
        member = kind.ref(pointer)
        merged.update(member.data.get("properties", {}))
    return merged


def string_choices(kind: AzType) -> tuple[set[str], bool] | None:
    """(allowed literal values, whether other strings are accepted) of an enumeration, else None."""
    if kind.kind == "StringLiteralType":
        return {kind.data["value"]}, False
    if kind.kind != "UnionType":
        return None
    values, open_ended = set(), False
    for member in kind.union_members():
        if member.kind == "StringLiteralType":
            values.add(member.data["value"])
        elif member.kind == "StringType":
            open_ended = True
        else:
            return None
    return values, open_ended
