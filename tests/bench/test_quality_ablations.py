"""Smoke runs of the expert-dropout and loss-balancing benchmarks (tiny data, 1 epoch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality import expert_dropout as ED
from bench.quality import loss_balancing as LB


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


@pytest.mark.slow
def test_loss_balancing_smoke_compares_three_balancers(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    LB.main(["--smoke", "--workers", "1", "--doc", str(doc)])
    text = doc.read_text()
    for b in LB.BALANCERS:
        assert text.count(f"\n| {b} | ") == 2
    assert "| 1.00 |" in text  # fixed is its own time reference
