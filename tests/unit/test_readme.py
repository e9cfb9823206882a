"""The README is the entry point: short, and its map names every package that exists."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_stays_an_entry_point():
    assert len(README.splitlines()) <= 200


def test_the_map_names_every_package_of_function_app():
    packages = sorted(p.name for p in (ROOT / "function_app").iterdir()
                      if (p / "__init__.py").exists())
    missing = [name for name in packages if f"`function_app/{name}/`" not in README]
    assert packages and missing == []


def _links(text: str, marker: str) -> set[str]:
    return {part.split(")")[0].split("#")[0] for part in text.split(marker)[1:]}


def test_every_linked_doc_exists_and_every_doc_is_reachable():
    docs = {p.name for p in (ROOT / "docs").glob("*.md")}
    linked = _links(README, "](docs/")
    assert linked - docs == set()
    reachable = set(linked)
    for page in linked:  # one step further: pages the README's pages link to
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        reachable |= {name for name in _links(text, "](") if name in docs}
        reachable |= {name for name in docs if f"docs/{name}" in text}
    assert docs - reachable == set(), "a page under docs/ is not reachable from the README"
