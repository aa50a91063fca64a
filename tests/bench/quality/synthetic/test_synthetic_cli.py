"""`python -m bench.quality.synthetic`: a smoke run and the options reaching the run."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from bench.quality.synthetic.cli import main


@pytest.mark.slow
def test_smoke_run_writes_its_section_and_plots(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkeep me\n<!-- END other -->\n")
    main(["--smoke", "--workers", "1", "--doc", str(doc)])
    text = doc.read_text()
    assert "keep me" in text
    assert text.count("<!-- BEGIN quality-synthetic -->") == 1
    for name in ("mmoe", "omoe", "shared_bottom"):
        assert f"| {name} |" in text
    assert (tmp_path / "img" / "synthetic_loss_curves.png").stat().st_size > 1000
    assert (tmp_path / "img" / "synthetic_final_loss_hist.png").stat().st_size > 1000


@pytest.mark.slow
def test_scale_and_train_samples_options_reach_the_run(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    main(["--smoke", "--workers", "1", "--runs", "2", "--scale", "3", "--train-samples", "400", "--doc", str(doc)])
    text = doc.read_text()
    assert "c = 3.0" in text and "400 training" in text and "2 runs per (model, p)" in text


def test_module_entry_runs_main_only_as_the_main_module(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # Spawned pool workers import the main module as __mp_main__: it must not start another run there.
    runpy.run_module("bench.quality.synthetic", run_name="__mp_main__")
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(sys, "argv", ["synthetic", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("bench.quality.synthetic", run_name="__main__")
    assert exit_.value.code == 0 and "--replot" in capsys.readouterr().out
