"""Smoke run of the loss-balancing benchmark (tiny data, 1 epoch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality import loss_balancing as LB


@pytest.mark.slow
def test_loss_balancing_smoke_compares_three_balancers(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    LB.main(["--smoke", "--workers", "1", "--doc", str(doc)])
    text = doc.read_text()
    for b in LB.BALANCERS:
        assert text.count(f"\n| {b} | ") == 2
    assert "| 1.00 |" in text  # fixed is its own time reference
