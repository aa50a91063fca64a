"""Smoke run of the task-pacing benchmark (tiny data, 2 epochs, 2 seeds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality import task_pacing as TP


@pytest.mark.slow
def test_task_pacing_smoke_writes_epochs_and_paired_metrics(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    TP.main(["--smoke", "--workers", "1", "--doc", str(doc)])
    text = doc.read_text()
    assert text.count(f"<!-- BEGIN {TP.SECTION} -->") == 1
    for scale in TP.SCALES[1:]:
        assert f"\n| {scale:g} vs 1 (paired) | " in text
    assert text.count("\n| 1 | ") == 2  # the unscaled row of both tables
    assert "mean best epoch: " in text
