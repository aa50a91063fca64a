"""docs/BENCHMARKS.md is shared: each benchmark owns one section between its markers and rewrites only that."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
DOC_HEADER = """# Benchmarks

Every number here comes from a command in this repository; the command, the date and the commit are
written next to each section. Each benchmark script rewrites only its own section, between its
`<!-- BEGIN name -->` and `<!-- END name -->` markers.
"""


def write_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace the text between `name`'s markers in `doc` (append the section if absent)."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    text = doc.read_text() if doc.exists() else DOC_HEADER
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
