"""The Ma et al. synthetic benchmark: its generator, model sizing, and a tiny end-to-end run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.quality import synthetic as S
from training.model import build_model


@pytest.mark.parametrize("p", [1.0, 0.9, 0.5])
def test_generator_linear_parts_have_the_requested_correlation(p: float) -> None:
    cfg = replace(S.smoke_config(), m=0, noise_var=0.0, n_train=4000, n_test=1000)
    data = S.make_data(p, cfg, np.random.default_rng(7))
    # With m = 0 and no noise, y_t = w_t^T x with x ~ N(0, I), so corr(y1, y2) = cos(w1, w2) = p.
    y = torch.cat([data["y_train"], data["y_test"]]).numpy()
    assert np.corrcoef(y.T)[0, 1] == pytest.approx(p, abs=0.03)
    assert y.std(axis=0) == pytest.approx([cfg.c, cfg.c], rel=0.05)


def test_every_p_reuses_the_draw_so_task_1_data_does_not_depend_on_p() -> None:
    # Runs are paired across p (common random numbers): only task 2's labels may change with p.
    cfg = S.smoke_config()
    a = S.make_data(1.0, cfg, np.random.default_rng(11))
    b = S.make_data(0.5, cfg, np.random.default_rng(11))
    assert torch.equal(a["x_train"], b["x_train"]) and torch.equal(a["y_test"][:, 0], b["y_test"][:, 0])
    assert not torch.equal(a["y_test"][:, 1], b["y_test"][:, 1])


def test_generator_noise_is_read_as_variance() -> None:
    cfg = replace(S.smoke_config(), n_train=20_000, n_test=10)
    a = S.make_data(0.5, cfg, np.random.default_rng(3))
    b = S.make_data(0.5, replace(cfg, noise_var=0.0), np.random.default_rng(3))
    noise = (a["y_train"] - b["y_train"]).numpy()
    assert noise.var() == pytest.approx(cfg.noise_var, rel=0.05)


def test_shared_bottom_is_sized_to_the_mmoe_parameter_count() -> None:
    cfg = S.SynthConfig()
    mmoe = S.n_params(build_model(S.model_args("mmoe", cfg)))
    sb = S.n_params(build_model(S.model_args("shared_bottom", cfg, S.shared_bottom_units(cfg))))
    assert abs(sb - mmoe) / mmoe < 0.01
    assert S.n_params(build_model(S.model_args("omoe", cfg))) < mmoe  # one gate instead of two


def test_training_learns_well_below_the_label_variance() -> None:
    torch.set_num_threads(1)  # tiny models: extra threads only add contention
    cfg = replace(S.smoke_config(), n_train=10_000, steps=400, eval_every=100)
    data = S.make_data(0.9, cfg, np.random.default_rng(0))
    curve, train_mse = S.train_run(S.model_args("mmoe", cfg), data, cfg, seed=0)
    assert curve.shape == (4, 2) and train_mse.shape == (2,)
    # Predicting the mean scores var(y) per task; a trained MMoE must do far better, and keep improving.
    assert (curve[-1] < 0.4 * data["y_test"].var(dim=0).numpy()).all()
    assert curve[-1].mean() < curve[0].mean()


@pytest.mark.slow
def test_smoke_run_writes_its_section_and_plots(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\n<!-- BEGIN other -->\nkeep me\n<!-- END other -->\n")
    S.main(["--smoke", "--workers", "1", "--doc", str(doc)])
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
    S.main(["--smoke", "--workers", "1", "--runs", "2", "--scale", "3", "--train-samples", "400", "--doc", str(doc)])
    text = doc.read_text()
    assert "c = 3.0" in text and "400 training" in text and "2 runs per (model, p)" in text


@pytest.mark.slow
def test_sensitivity_smoke_writes_one_row_per_cell_and_model(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    S.main(["--smoke", "--sensitivity", "--workers", "1", "--runs", "2", "--doc", str(doc)])
    text = doc.read_text()
    assert "### Sensitivity check" in text and "Final test MSE" not in text  # smoke never reads saved runs
    rows = [line for line in text.splitlines() if line.startswith("| ") and "| mmoe |" in line]
    assert len(rows) == len(S.SMOKE_SENS_CELLS)
    assert all(f"{c:g} | {n:,} |" in text for c, n in S.SMOKE_SENS_CELLS)
    assert "| all 2 cells | test |" in text  # the pooled sign-test table


def test_sign_test_needs_a_clear_majority_of_paired_runs() -> None:
    # 9 of 10 runs rising is clear (p = 2 * 11/1024); 8 of 10 is not (p = 2 * 56/1024).
    assert S.sign_test(np.array([1.0] * 9 + [-1.0])) == pytest.approx(22 / 1024)
    assert S.rises(np.array([1.0] * 9 + [-1.0])) and not S.rises(np.array([1.0] * 8 + [-1.0] * 2))
    assert not S.rises(np.array([-1.0] * 10))  # clearly one-directional, but falling
