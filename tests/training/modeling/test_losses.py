"""Masked losses ignore unobserved labels; balancers stay finite when a task has no labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training.fit.train import train_step
from training.modeling.losses import FixedWeighting, GradNorm, MaskedTaskLosses, UncertaintyWeighting
from training.modeling.model import MMoE, ModelArgs, SharedBottom
from training.streaming.feed import Batch

LOSSES = ["bce", "mse", "bce", "huber"]


def batch(seed: int, rows: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(rows, 4, generator=g)
    labels = torch.randn(rows, 4, generator=g)
    labels[:, [0, 2]] = (labels[:, [0, 2]] > 0).float()
    mask = torch.rand(rows, 4, generator=g) < 0.5
    return raw, labels, mask


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), junk=st.floats(-1e6, 1e6, allow_nan=False))
def test_changing_a_masked_label_changes_nothing(seed: int, junk: float) -> None:
    raw, labels, mask = batch(seed)
    losses = MaskedTaskLosses(LOSSES)
    before, counts = losses(raw, labels, mask)
    changed = torch.where(mask, labels, torch.full_like(labels, junk))
    after, counts_after = losses(raw, changed, mask)
    torch.testing.assert_close(before, after)
    torch.testing.assert_close(counts, counts_after)


def test_masked_loss_is_the_mean_over_observed_rows_only() -> None:
    raw = torch.tensor([[0.0], [3.0], [5.0]])
    labels = torch.tensor([[1.0], [1.0], [100.0]])
    mask = torch.tensor([[True], [True], [False]])
    per_task, counts = MaskedTaskLosses(["mse"])(raw, labels, mask)
    assert counts.tolist() == [2.0]
    assert per_task.item() == pytest.approx((1.0 + 4.0) / 2)


def test_nan_or_inf_in_a_masked_label_does_not_leak() -> None:
    raw, labels, mask = batch(1)
    raw.requires_grad_(True)
    labels = torch.where(mask, labels, torch.full_like(labels, float("nan")))
    per_task, _ = MaskedTaskLosses(LOSSES)(raw, labels, mask)
    per_task.sum().backward()
    assert torch.isfinite(per_task).all()
    assert torch.isfinite(raw.grad).all()


@pytest.mark.parametrize("balancer", [
    FixedWeighting([1.0, 1.0, 1.0, 1.0]),
    UncertaintyWeighting(["binary", "regression", "binary", "regression"]),
])
def test_a_task_without_labels_contributes_zero_and_no_nan_gradient(balancer) -> None:
    raw, labels, mask = batch(2)
    mask[:, 1] = False  # watch_time-like task absent from the batch
    raw.requires_grad_(True)
    per_task, counts = MaskedTaskLosses(LOSSES)(raw, labels, mask)
    assert per_task[1].item() == 0.0 and counts[1].item() == 0.0
    total = balancer(per_task, counts)
    total.backward()
    assert torch.isfinite(total)
    assert torch.isfinite(raw.grad).all()
    assert (raw.grad[:, 1] == 0).all()
    for p in balancer.parameters():
        assert torch.isfinite(p.grad).all()
        assert p.grad[1] == 0  # an absent task's log-variance gets nothing from this batch


def test_uncertainty_weighting_uses_the_classification_and_regression_forms() -> None:
    bal = UncertaintyWeighting(["binary", "regression"])
    with torch.no_grad():
        bal.log_vars.copy_(torch.tensor([0.5, 0.5]))
    total = bal(torch.tensor([2.0, 2.0]), torch.tensor([1.0, 1.0]))
    expected = np.exp(-0.5) * 2 + 0.25 + 0.5 * np.exp(-0.5) * 2 + 0.25
    assert total.item() == pytest.approx(expected, rel=1e-6)


# -- GradNorm --------------------------------------------------------------------------------------


def tiny_mmoe(arch: str = "mmoe") -> torch.nn.Module:
    args = ModelArgs(cardinalities=[5, 7], n_numeric=3, tasks=["a", "b", "c", "d"], arch=arch, num_experts=3,
                     expert_hidden=[16, 8], tower_hidden=[8], embedding_dim=4, expert_dropout=0.0)
    return MMoE(args) if arch == "mmoe" else SharedBottom(args)


def gradnorm_step(model, bal, opt, seed: int, absent: int | None = None) -> torch.Tensor:
    """One step of the trainer's own loop (training/fit/train.py: train_step), so reordering it is caught."""
    g = torch.Generator().manual_seed(seed)
    cat = torch.randint(0, 5, (64, 2), generator=g)
    num = torch.randn(64, 3, generator=g)
    _, labels, mask = batch(seed, rows=64)
    if absent is not None:
        mask[:, absent] = False
    per_task, _, _ = train_step(model, MaskedTaskLosses(LOSSES), bal, opt, Batch((cat, num), labels, mask))
    return per_task


@pytest.mark.parametrize("arch", ["mmoe", "shared_bottom"])
def test_gradnorm_weights_stay_positive_and_sum_to_the_number_of_tasks(arch: str) -> None:
    torch.manual_seed(0)
    model = tiny_mmoe(arch)
    bal = GradNorm(4, model.shared_layer(), alpha=1.5)
    opt = torch.optim.Adam([*model.parameters(), *bal.parameters()], lr=0.05)
    start = bal.weights.detach().clone()
    for step in range(40):
        gradnorm_step(model, bal, opt, seed=step)
        w = bal.task_weights()
        assert (w > 0).all(), w
        assert w.sum().item() == pytest.approx(4.0, abs=1e-5)
    assert not torch.allclose(bal.task_weights(), start)  # it does learn something


def test_gradnorm_leaves_an_absent_task_alone_and_finite() -> None:
    torch.manual_seed(0)
    model = tiny_mmoe()
    bal = GradNorm(4, model.shared_layer())
    opt = torch.optim.SGD([*model.parameters(), *bal.parameters()], lr=0.01)
    gradnorm_step(model, bal, opt, seed=1)  # every task present: initial losses recorded
    gradnorm_step(model, bal, opt, seed=2, absent=2)
    assert bal.weights.grad is not None and bal.weights.grad[2].item() == 0.0
    assert torch.isfinite(bal.weights.grad).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_gradnorm_initial_loss_comes_from_the_first_batch_with_labels() -> None:
    torch.manual_seed(0)
    model = tiny_mmoe()
    bal = GradNorm(4, model.shared_layer())
    opt = torch.optim.SGD([*model.parameters(), *bal.parameters()], lr=0.01)
    gradnorm_step(model, bal, opt, seed=1, absent=3)  # task 3 never seen yet: no 0/0 later
    assert not bal.seen[3] and bal.initial_loss[3] == 0
    per_task = gradnorm_step(model, bal, opt, seed=2)
    assert bal.seen.all()
    assert bal.initial_loss[3].item() == pytest.approx(per_task[3].item())
    assert torch.isfinite(bal.task_weights()).all()


def test_gradnorm_moves_weight_toward_the_task_with_small_gradients() -> None:
    """Two tasks, one whose loss is scaled down 100x: its gradient norm is smaller, so it gains weight."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    bal = GradNorm(2, [layer.weight], alpha=0.0)
    opt = torch.optim.SGD(bal.parameters(), lr=0.1)
    x = torch.randn(32, 3)
    for _ in range(10):
        out = layer(x)
        per_task = torch.stack([out[:, 0].pow(2).mean(), 0.01 * out[:, 1].pow(2).mean()])
        opt.zero_grad(set_to_none=True)
        bal.before_backward(per_task, torch.tensor([32.0, 32.0]))
        opt.step()
        bal.after_step()
    w = bal.task_weights()
    assert w[1] > w[0]
