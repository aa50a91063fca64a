"""The scale-out benchmark's docs come from its saved runs (bench/results/), so they re-render the same."""

from __future__ import annotations

from bench.doc_sections import DOC
from bench.training import train_scale as T


def test_train_scale_section_renders_from_the_saved_runs() -> None:
    text = T.render(T.load())
    assert text in DOC.read_text()
    runs = T.load()["throughput"]["runs"]
    ratio = T.best(runs["streamed, 1 process x 1 thread"]) / T.best(runs["in memory, 1 process x 1 thread"])
    assert f"{ratio:.3f}x with 1 thread" in text
    assert "| 20,000,000 | **1.42 GiB**" in text

