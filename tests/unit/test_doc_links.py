"""Every relative link in the README and docs/ (docs/perf/ included) reaches a file, and a link
to a heading (`page.md#anchor`) reaches a heading of that page.

Sections move (docs/PERFORMANCE.md's pass-by-pass text went to docs/perf/history.md): a link
that still points at the old place sends a reader to nothing. Anchors are made as GitHub makes
them: lower case, punctuation dropped, spaces to hyphens, "-1", "-2" for repeats.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.*)")


def slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out, fenced = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            base = slug(m.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(page: Path) -> list[str]:
    """The relative links of `page` whose file or heading does not exist."""
    broken = []
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("<"):
            continue  # a URL, not a file of this repository
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif fragment and dest.suffix == ".md" and fragment not in anchors(
                dest.read_text(encoding="utf-8")):
            broken.append(target)
    return broken


def test_every_relative_link_and_anchor_in_the_docs_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    stale = {str(p.relative_to(ROOT)): found for p in pages if (found := broken_links(p))}
    assert stale == {}


def test_performance_stays_an_entry_point_with_its_history_linked():
    text = (ROOT / "docs/PERFORMANCE.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 330  # about 300, plus the newest pass's paragraph
    assert "](perf/history.md" in text


def test_anchors_follow_githubs_rule():
    text = "# Tenth pass, bias (22:58 UTC): `make bench` -> 0.74x\n## Cold start\n## Cold start\n"
    assert anchors(text) == {"tenth-pass-bias-2258-utc-make-bench---074x", "cold-start",
                             "cold-start-1"}
