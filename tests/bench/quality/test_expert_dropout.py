"""Smoke run of the expert-dropout benchmark (tiny data, 1 epoch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality import expert_dropout as ED


@pytest.mark.slow
def test_expert_dropout_smoke_writes_tables_and_heatmaps(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    ED.main(["--smoke", "--workers", "1", "--doc", str(doc)])
    text = doc.read_text()
    assert text.count("<!-- BEGIN quality-expert-dropout -->") == 1
    for rate in ED.RATES:
        assert text.count(f"\n| {rate:g} | ") == 2  # one row per dataset
    for name in ("demo", "movielens"):
        assert (tmp_path / "img" / f"expert_dropout_gates_{name}.png").stat().st_size > 1000
