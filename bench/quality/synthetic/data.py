"""The paper's generator: two regression tasks whose linear parts have correlation p."""

from __future__ import annotations

import numpy as np
import torch

from bench.quality.synthetic.config import SynthConfig


def make_data(p: float, cfg: SynthConfig, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """One draw of the generator: x (N, d) float32, y (N, 2) float32, split into train and test.

    The random numbers are drawn in the same order and shapes whatever p is, so one seed gives the
    same u1, u2, alpha, beta, x and noise at every p: task 1's data does not depend on p at all.
    """
    u, _ = np.linalg.qr(rng.normal(size=(cfg.d, 2)))  # two orthonormal columns
    w = cfg.c * np.stack([u[:, 0], p * u[:, 0] + np.sqrt(1.0 - p * p) * u[:, 1]], axis=1)  # (d, 2)
    alpha, beta = rng.normal(size=cfg.m), rng.normal(size=cfg.m)
    n = cfg.n_train + cfg.n_test
    x = rng.normal(size=(n, cfg.d))
    z = x @ w  # (N, 2)
    waves = np.sin(z[:, :, None] * alpha + beta).sum(axis=-1)  # (N, 2)
    y = z + waves + rng.normal(0.0, np.sqrt(cfg.noise_var), size=z.shape)
    x, y = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))
    return {"x_train": x[:cfg.n_train], "y_train": y[:cfg.n_train],
            "x_test": x[cfg.n_train:], "y_test": y[cfg.n_train:]}
