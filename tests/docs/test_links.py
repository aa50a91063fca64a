"""Every relative link in README.md and docs/*.md leads to a file in the repository, and every `#anchor`
to a heading of the file it names (GitHub's anchors: lower case, punctuation dropped, spaces as hyphens)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)


def anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        if m := re.match(r"#{1,6} (.+)", line):
            a = anchor(m.group(1))
            out.add(f"{a}-{seen[a]}" if a in seen else a)
            seen[a] = seen.get(a, 0) + 1
    return out


def links(path: Path) -> list[str]:
    return [m.group(1) for m in LINK.finditer(FENCE.sub("", path.read_text()))]


def relative(target: str) -> bool:
    return not re.match(r"[a-z][a-z0-9+.-]*:", target)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(doc: Path) -> None:
    broken = []
    for target in filter(relative, links(doc)):
        file, _, fragment = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists() or REPO not in (dest, *dest.parents):
            broken.append(f"{target}: no such file in the repository")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading with that anchor in {dest.relative_to(REPO)}")
    assert not broken, f"{doc.relative_to(REPO)}:\n" + "\n".join(broken)


def test_the_docs_link_only_inside_the_repository() -> None:
    """No link into GitHub or another site stands in for a file of this repository."""
    outside = [f"{d.relative_to(REPO)}: {t}" for d in DOCS for t in links(d)
               if not relative(t) and re.search(r"github\.com/[^/]+/mtl-ranker", t)]
    assert not outside


def test_the_anchor_rule_matches_githubs() -> None:
    assert anchor("Serving latency (`bench/serving/serve_latency.py`)") == "serving-latency-benchservingserve_latencypy"
    assert anchor("The loop, closed: rank → log") == "the-loop-closed-rank--log"
