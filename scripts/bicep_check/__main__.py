"""Command line: python -m scripts.bicep_check [folder]. Exit 0 clean, 1 findings, 2 set-up."""

from __future__ import annotations

import sys
from pathlib import Path

from .allow import AllowList, AllowListInvalid
from .azure_types import REPO, TypeIndex, TypesMissing, types_folder
from .findings import Finding, at
from .modules import check_modules
from .resources import check_resources
from .symbols import scope_functions, undeclared
from .tree import BicepFile


def check_folder(folder: Path, types: TypeIndex) -> list[Finding]:
    """Every finding over every .bicep file under `folder`, sorted by file and line."""
    allow = AllowList.load(folder)
    cache: dict[Path, BicepFile] = {}

    def load(path: Path) -> BicepFile:
        path = path.resolve()
        if path not in cache:
            cache[path] = BicepFile.load(path)
        return cache[path]

    found: list[Finding] = []
    for path in sorted(folder.rglob("*.bicep")):
        file = load(path)
        found += [at(path, n, "syntax", f"cannot parse near {n.text.decode()[:40]!r}")
                  for n in file.syntax_errors()]
        found += undeclared(file) + scope_functions(file)
        found += check_resources(file, types, allow) + check_modules(file, load)
    return sorted(set(found))


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else REPO / "infra"
    if not folder.is_dir() or not any(folder.rglob("*.bicep")):
        print(f"bicep-check: no .bicep files under {folder}", file=sys.stderr)
        return 2
    try:
        types = TypeIndex(types_folder())
        findings = check_folder(folder, types)
    except (TypesMissing, AllowListInvalid) as error:
        print(f"bicep-check: {error}", file=sys.stderr)
        return 2
    for finding in findings:
        print(finding.render(Path.cwd()))
    count = len(list(folder.rglob("*.bicep")))
    print(f"bicep-check: {len(findings)} finding(s) in {count} file(s) under {folder}"
          f" (types: {types.folder})", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
