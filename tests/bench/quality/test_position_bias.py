"""Smoke run of the position-bias benchmark (tiny data, 1 epoch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality import position_bias as PB


@pytest.mark.slow
def test_position_bias_smoke_compares_with_and_without_the_tower(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    PB.main(["--smoke", "--workers", "1", "--doc", str(doc)])
    text = doc.read_text()
    for eta in PB.STRENGTHS:
        for variant in PB.VARIANTS:
            assert f"\n| {eta:g} | {variant} | " in text
        assert f"- η = {eta:g}: NDCG@10 vs true relevance (click ranking): " in text
