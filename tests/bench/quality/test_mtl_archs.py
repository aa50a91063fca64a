"""Smoke run of the multi-task architecture benchmark (tiny data, 1 epoch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality import mtl_archs as MA


@pytest.mark.slow
def test_mtl_archs_smoke_compares_every_arch_with_single_task(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    MA.main(["--smoke", "--workers", "1", "--doc", str(doc)])
    text = doc.read_text()
    assert text.count(f"<!-- BEGIN {MA.SECTION} -->") == 1
    for label in MA.MODELS:
        assert text.count(f"\n| {label} | ") >= 6  # combined, joint and stopping tables, on both datasets
    for label in ("MMoE", "CGC", "PLE", "shared-bottom"):
        assert f"- {label}: helps" in text  # the goal verdict
    assert text.count("\n| CGC | ") == text.count("\n| PLE | ")  # both appear in the shared-experts table
    assert "weight on shared experts" in text
