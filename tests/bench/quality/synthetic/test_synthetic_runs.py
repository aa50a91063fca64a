"""One training run learns; all models on one draw see the same data; results do not depend on workers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.quality.synthetic.config import smoke_config
from bench.quality.synthetic.data import make_data
from bench.quality.synthetic.models import model_args
from bench.quality.synthetic.runs import run_all, train_run


@pytest.mark.slow  # 400 training steps, about 2 s: what training achieves, not mechanics (run_all below)
def test_training_learns_well_below_the_label_variance() -> None:
    torch.set_num_threads(1)  # tiny models: extra threads only add contention
    cfg = replace(smoke_config(), n_train=10_000, steps=400, eval_every=100)
    data = make_data(0.9, cfg, np.random.default_rng(0))
    curve, train_mse = train_run(model_args("mmoe", cfg), data, cfg, seed=0)
    assert curve.shape == (4, 2) and train_mse.shape == (2,)
    # Predicting the mean scores var(y) per task; a trained MMoE must do far better, and keep improving.
    assert (curve[-1] < 0.4 * data["y_test"].var(dim=0).numpy()).all()
    assert curve[-1].mean() < curve[0].mean()


def test_run_all_shapes_and_repeatability() -> None:
    cfg = replace(smoke_config(), d=10, experts=2, expert_units=4, runs=2, steps=20, eval_every=10, n_train=300,
                  n_test=100, models=("mmoe", "shared_bottom"))
    a, b = run_all(cfg, workers=1), run_all(cfg, workers=1)
    for name in cfg.models:
        for p in cfg.correlations:
            assert np.asarray(a["curves"][name][str(p)]).shape == (2, 2, 2)  # (runs, evals, tasks)
            assert np.asarray(a["train"][name][str(p)]).shape == (2, 2)  # (runs, tasks)
    assert a["curves"] == b["curves"] and a["train"] == b["train"]  # seeded: same draws, init, batches
