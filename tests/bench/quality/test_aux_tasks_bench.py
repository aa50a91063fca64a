"""Smoke run of the auxiliary-task benchmark (tiny data, 1 epoch, 2 seeds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality import aux_tasks as AT


@pytest.mark.slow
def test_aux_tasks_smoke_writes_paired_tables(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    AT.main(["--smoke", "--workers", "1", "--doc", str(doc)])
    text = doc.read_text()
    assert text.count(f"<!-- BEGIN {AT.SECTION} -->") == 1
    assert text.count("| paired gain (+ = aux helps) |") == 2  # one table per dataset
    assert "| aux true_click (test) |" in text and "| aux rating (test) |" in text
    assert "rating RMSE" not in text.split("### MovieLens")[1]  # MovieLens serves watch and like only
    assert text.count("### Reading") == 1
