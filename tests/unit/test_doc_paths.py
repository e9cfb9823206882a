"""Every file path the README, docs/ and the code's docstrings name exists in the tree.

Files move (wiring/, routing/, ratelimit/lease and tally/, tests/support/): a page that still names
the old place sends a newcomer to nothing. A path is a repository path (`function_app/...`,
`load/...`, `scripts/...`, `tests/...`, `funchost/...`, `services/...`, `infra/...`) or, as the
pages and docstrings write them, a module under function_app/ (`routing/upstream.py`).
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("function_app", "load", "scripts", "tests", "funchost", "services", "infra")
PACKAGES = tuple(p.name for p in (ROOT / "function_app").iterdir() if (p / "__init__.py").exists())
# A path starts after a space, quote, backtick or bracket (not after "/" or ".": URL paths such
# as /openai/v1/... and dotted names are not files).
_REPO_PATH = re.compile(rf"(?<![\w/.-])((?:{'|'.join(TOP)})/[\w./*-]*[\w*])")
_MODULE = re.compile(r"(?<![\w/.-])((?:[a-z_]+/)+[a-z_0-9]+\.py)\b")
# Outputs the benchmarks write (ignored by git, so absent from a fresh tree).
GENERATED = ("load/results",)
# Files the pages name as history, with the word that says they are gone.
REMOVED = {"function_app/devhost.py": "removed"}


def _exists(path: str, near: Path) -> bool:
    """`path` as the repository names it, under function_app/, or beside the naming file."""
    if "*" in path:
        return any(ROOT.glob(path))
    return any((base / path.rstrip("/")).exists()
               for base in (ROOT, ROOT / "function_app", near.parent, near.parent.parent))


def missing_paths(text: str, near: Path) -> list[str]:
    """The paths `text` names that do not exist (generated outputs and named history aside)."""
    found = set(_REPO_PATH.findall(text))
    found |= {m for m in _MODULE.findall(text) if m.split("/")[0] in PACKAGES + TOP}
    found = {p.rstrip(".") for p in found}
    return sorted(p for p in found if not _generated(p) and p not in REMOVED
                  and not _exists(p, near))


def _generated(path: str) -> bool:
    return any(path == out or path.startswith(out + "/") for out in GENERATED)


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_path_the_readme_and_docs_name_exists():
    stale = {page.name: missing for page in _pages()
             if (missing := missing_paths(page.read_text(encoding="utf-8"), page))}
    assert stale == {}


# Code whose docstrings and comments point readers at files (tests/ aside from its support code:
# tests hold made-up paths on purpose, this one included).
CODE = ("function_app", "funchost", "scripts", "load", "tests/support")


def test_every_path_a_docstring_or_comment_names_exists():
    sources = sorted(f for top in CODE for f in (ROOT / top).rglob("*.py"))
    stale = {str(f.relative_to(ROOT)): missing for f in sources
             if (missing := missing_paths(f.read_text(encoding="utf-8"), f))}
    assert stale == {}


def test_the_exceptions_stay_exceptions():
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert all(out + "/" in ignored for out in GENERATED)
    for path, word in REMOVED.items():
        assert not (ROOT / path).exists(), f"{path} is back: drop it from REMOVED"
        pages = [p for p in _pages() if path in p.read_text(encoding="utf-8")]
        assert pages and all(word in line for p in pages
                             for line in p.read_text(encoding="utf-8").splitlines() if path in line)


def test_a_moved_module_is_reported():
    old = "The upstream step is `stages/upstream.py`; the map is in function_app/core/routes.py."
    assert missing_paths(old, ROOT / "README.md") == ["function_app/core/routes.py",
                                                      "stages/upstream.py"]
    assert missing_paths("See `routing/upstream.py` and load/results/bench.json.",
                         ROOT / "README.md") == []
