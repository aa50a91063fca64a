"""MovieLens-100k benchmark: a smoke run of every model, and the spec through the `ranker train` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality import movielens as ML


@pytest.mark.slow
def test_smoke_run_compares_all_models(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    ML.main(["--smoke", "--workers", "1", "--doc", str(doc)])
    text = doc.read_text()
    for label in ML.MODELS:
        assert f"| {label} |" in text
    assert "Help/hurt matrix" in text and "| our MMoE |" in text


@pytest.mark.slow
def test_the_spec_trains_and_exports_through_the_cli(tmp_path: Path) -> None:
    """A user's path: one YAML + one Parquet file -> `ranker train` -> a verified bundle."""
    from typer.testing import CliRunner

    from training.cli import app

    data = ML.smoke_data(max_user=40)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(app, ["train", str(ML.SPEC), "--data", str(data), "--out", str(out),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "model.onnx").exists() and (out / "manifest.json").exists()
