"""The torch-rechub glue: masked labels are dropped from its losses; batches cover every row once per pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.quality.rechub_mmoe import Batches, masked


def test_masked_loss_ignores_nan_rows() -> None:
    pred = torch.tensor([0.9, 0.2, 0.6], requires_grad=True)
    y = torch.tensor([1.0, float("nan"), 0.0])
    loss = masked(torch.nn.BCELoss())(pred, y)
    assert loss.item() == pytest.approx(torch.nn.BCELoss()(pred[[0, 2]], y[[0, 2]]).item())
    loss.backward()
    assert pred.grad[1] == 0
    assert masked(torch.nn.MSELoss())(pred, torch.full((3,), float("nan"))).item() == 0.0


def test_batches_are_a_seeded_permutation_of_the_rows() -> None:
    x = {"a": np.arange(10, dtype=np.int64)}
    y = np.arange(10, dtype=np.float32) * 10
    first = [xb["a"].tolist() for xb, _ in Batches(x, y, 4, seed=3)]
    assert [len(b) for b in first] == [4, 4, 2] and sorted(sum(first, [])) == list(range(10))
    assert first == [xb["a"].tolist() for xb, _ in Batches(x, y, 4, seed=3)]
    assert all(torch.equal(yb, xb["a"].float() * 10) for xb, yb in Batches(x, y, 4, seed=3))
