"""`--replot` of every quality benchmark re-renders its docs/BENCHMARKS.md section from the saved runs
in bench/quality/results/, as committed: the section in the docs is what its command makes."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.doc_sections import DOC
from bench.quality import expert_dropout, movielens, mtl_archs, position_bias
from bench.quality.synthetic import cli as synthetic
from bench.quality.synthetic.config import SECTION as SYNTHETIC

# A fresh run writes no note, --replot adds one, a run of one synthetic mode re-renders the other's.
RERENDERED = re.compile(r" Tables?(?: and figures)? re-rendered from the saved runs[^.]*\.")
BENCHMARKS = {SYNTHETIC: synthetic.main, movielens.SECTION: movielens.main,
              expert_dropout.SECTION: expert_dropout.main,
              mtl_archs.SECTION: mtl_archs.main, position_bias.SECTION: position_bias.main}


def section(text: str, name: str) -> str:
    body = text.split(f"<!-- BEGIN {name} -->", 1)[1].split(f"<!-- END {name} -->", 1)[0]
    return RERENDERED.sub("", body)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_replot_reproduces_the_committed_section(name: str, tmp_path: Path) -> None:
    main: Callable[[list[str]], None] = BENCHMARKS[name]
    doc = tmp_path / "BENCHMARKS.md"
    shutil.copy(DOC, doc)
    main(["--replot", "--doc", str(doc)])
    assert section(doc.read_text(), name) == section(DOC.read_text(), name)
    for png in re.findall(r"\]\((img/[^)]+\.png)\)", section(doc.read_text(), name)):
        assert (tmp_path / png).stat().st_size > 1000
