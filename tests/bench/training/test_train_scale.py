"""The scale-out benchmarks' docs come from their saved runs (bench/results/), so they re-render the same."""

from __future__ import annotations

import json

from bench.doc_sections import DOC
from bench.training import grad_sync_bytes as G
from bench.training import train_scale as T


def test_train_scale_section_renders_from_the_saved_runs() -> None:
    text = T.render(T.load())
    assert text in DOC.read_text()
    runs = T.load()["throughput"]["runs"]
    ratio = T.best(runs["streamed, 1 process x 1 thread"]) / T.best(runs["in memory, 1 process x 1 thread"])
    assert f"{ratio:.3f}x with 1 thread" in text
    assert "| 20,000,000 | **1.42 GiB**" in text


def test_grad_sync_section_renders_from_the_saved_runs() -> None:
    saved = json.loads((G.REPO / "bench" / "results" / "grad_sync_bytes.json").read_text())
    text = G.render(saved["results"], saved["command"], saved["commit"], saved["date"])
    assert text in DOC.read_text()
    for vocab in ("10000", "1000000"):
        r = saved["results"][vocab]
        assert r["rows"]["bytes"] < 0.5e6  # rows: under half a megabyte whatever the vocabulary
        assert r["dense"]["bytes"] > int(vocab) * 2 * 16 * 4  # dense: both whole tables
        assert G.stop_workers(r) > 32  # the network does not stop it within the workers projected
