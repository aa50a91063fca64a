"""The Ma et al. generator: correlation of the linear parts, paired draws across p, noise as variance."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.quality.synthetic.config import smoke_config
from bench.quality.synthetic.data import make_data


@pytest.mark.parametrize("p", [1.0, 0.9, 0.5])
def test_generator_linear_parts_have_the_requested_correlation(p: float) -> None:
    cfg = replace(smoke_config(), m=0, noise_var=0.0, n_train=4000, n_test=1000)
    data = make_data(p, cfg, np.random.default_rng(7))
    # With m = 0 and no noise, y_t = w_t^T x with x ~ N(0, I), so corr(y1, y2) = cos(w1, w2) = p.
    y = torch.cat([data["y_train"], data["y_test"]]).numpy()
    assert np.corrcoef(y.T)[0, 1] == pytest.approx(p, abs=0.03)
    assert y.std(axis=0) == pytest.approx([cfg.c, cfg.c], rel=0.05)


def test_every_p_reuses_the_draw_so_task_1_data_does_not_depend_on_p() -> None:
    # Runs are paired across p (common random numbers): only task 2's labels may change with p.
    cfg = smoke_config()
    a = make_data(1.0, cfg, np.random.default_rng(11))
    b = make_data(0.5, cfg, np.random.default_rng(11))
    assert torch.equal(a["x_train"], b["x_train"]) and torch.equal(a["y_test"][:, 0], b["y_test"][:, 0])
    assert not torch.equal(a["y_test"][:, 1], b["y_test"][:, 1])


def test_generator_noise_is_read_as_variance() -> None:
    cfg = replace(smoke_config(), n_train=20_000, n_test=10)
    a = make_data(0.5, cfg, np.random.default_rng(3))
    b = make_data(0.5, replace(cfg, noise_var=0.0), np.random.default_rng(3))
    noise = (a["y_train"] - b["y_train"]).numpy()
    assert noise.var() == pytest.approx(cfg.noise_var, rel=0.05)
