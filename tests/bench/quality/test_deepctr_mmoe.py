"""The DeepCTR-Torch glue: masked labels are dropped from its losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.quality.deepctr_mmoe import masked


def test_masked_loss_ignores_nan_rows() -> None:
    pred = torch.tensor([0.9, 0.2, 0.6], requires_grad=True)
    y = torch.tensor([1.0, float("nan"), 0.0])
    loss = masked(F.binary_cross_entropy)(pred, y, reduction="sum")
    expected = F.binary_cross_entropy(pred[[0, 2]], y[[0, 2]], reduction="sum")
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert pred.grad[1] == 0
    empty = masked(F.mse_loss)(pred, torch.full((3,), float("nan")), reduction="sum")
    assert empty.item() == 0.0
