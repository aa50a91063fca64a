"""PCGrad and MGDA-UB: the surgery and the min-norm solve are right, and a task without labels is safe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from training.modeling.grad_conflict import MGDAUB, PCGrad, min_norm_weights, project_conflicts
from training.modeling.losses import MaskedTaskLosses
from training.modeling.model import ModelArgs, build_model, shared_parameters

LOSSES = ["bce", "mse", "bce"]


def setup(arch: str = "mmoe", seed: int = 0):
    torch.manual_seed(seed)
    args = ModelArgs(cardinalities=[6, 4], n_numeric=2, tasks=["a", "b", "c"], arch=arch, num_experts=2,
                     expert_hidden=[8], tower_hidden=[4], embedding_dim=3, expert_dropout=0.0)
    model = build_model(args).train()
    g = torch.Generator().manual_seed(seed)
    cat, num = torch.randint(0, 4, (64, 2), generator=g), torch.randn(64, 2, generator=g)
    labels = torch.randn(64, 3, generator=g)
    labels[:, [0, 2]] = (labels[:, [0, 2]] > 0).float()
    mask = torch.ones(64, 3, dtype=torch.bool)
    return model, (cat, num), labels, mask


def plain_grads(model, inputs, labels, mask) -> dict[str, torch.Tensor]:
    model.zero_grad()
    per_task, _ = MaskedTaskLosses(LOSSES)(model(*inputs), labels, mask)
    per_task.sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_projection_removes_every_conflict_and_leaves_agreeing_gradients_alone() -> None:
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [0.5, 0.5]])
    out = project_conflicts(g, torch.Generator().manual_seed(0))
    for i in range(3):
        for j in range(3):
            if i != j and g[i] @ g[j] < 0:
                assert out[i] @ g[j] >= -1e-6
    agree = torch.tensor([[1.0, 0.2], [0.5, 1.0]])
    torch.testing.assert_close(project_conflicts(agree), agree)


def pcgrad_step(model, inputs, labels, mask) -> tuple[torch.Tensor, torch.Tensor]:
    shared = set(shared_parameters(model, 3))
    bal = PCGrad([1.0, 1.0, 1.0], dict(model.named_parameters()), shared, seed=0)
    model.zero_grad()
    per_task, counts = MaskedTaskLosses(LOSSES)(model(*inputs), labels, mask)
    bal.backward(bal(per_task, counts), per_task, counts)
    return per_task, counts


def test_pcgrad_changes_only_the_shared_gradients() -> None:
    model, inputs, labels, mask = setup()
    plain = plain_grads(model, inputs, labels, mask)
    pcgrad_step(model, inputs, labels, mask)
    shared = set(shared_parameters(model, 3))
    for name, p in model.named_parameters():
        if name not in shared:  # towers and gates: exactly the ordinary gradient
            torch.testing.assert_close(p.grad, plain[name])
    assert any(not torch.allclose(p.grad, plain[n]) for n, p in model.named_parameters() if n in shared)


def test_pcgrad_with_one_labelled_task_is_the_plain_gradient_and_stays_finite() -> None:
    model, inputs, labels, mask = setup()
    mask[:, 1:] = False  # tasks b and c have no labels in this batch
    labels[:, 1:] = float("nan")
    plain = plain_grads(model, inputs, labels, mask)
    per_task, counts = pcgrad_step(model, inputs, labels, mask)
    assert counts.tolist() == [64.0, 0.0, 0.0]
    for name, p in model.named_parameters():
        assert torch.isfinite(p.grad).all()
        torch.testing.assert_close(p.grad, plain[name])


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_min_norm_weights_solve_the_quadratic_program(n: int) -> None:
    rng = np.random.default_rng(n)
    for trial in range(4):
        g = torch.from_numpy(rng.normal(size=(n, 20)) + trial * rng.normal(size=20)).float()
        a = min_norm_weights(g).double().numpy()
        gram = (g @ g.T).double().numpy()
        ref = minimize(lambda x, gram=gram: x @ gram @ x, np.full(n, 1 / n), method="SLSQP", bounds=[(0, 1)] * n,
                       constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}], options={"ftol": 1e-14})
        assert a.min() >= 0 and a.sum() == pytest.approx(1.0)
        assert a @ gram @ a <= ref.fun + 1e-5


def test_min_norm_of_opposite_gradients_is_zero_and_of_one_dominated_gradient_is_that_one() -> None:
    opposite = torch.tensor([[1.0, 2.0], [-1.0, -2.0]])
    torch.testing.assert_close(min_norm_weights(opposite), torch.tensor([0.5, 0.5]))
    small_inside = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # the shorter one is the min-norm point
    torch.testing.assert_close(min_norm_weights(small_inside), torch.tensor([1.0, 0.0]))


def mgda_step(model, inputs, labels, mask, normalization: str = "loss+") -> MGDAUB:
    bal = MGDAUB(3, model.representation(), normalization)
    model.zero_grad()
    per_task, counts = MaskedTaskLosses(LOSSES)(model(*inputs), labels, mask)
    bal.backward(bal(per_task, counts), per_task, counts)
    return bal


@pytest.mark.parametrize("arch", ["mmoe", "cgc", "ple", "shared_bottom"])
@pytest.mark.parametrize("normalization", ["none", "l2", "loss", "loss+"])
def test_mgda_weights_are_a_simplex_point_and_gradients_finite(arch: str, normalization: str) -> None:
    model, inputs, labels, mask = setup(arch)
    bal = mgda_step(model, inputs, labels, mask, normalization)
    assert bal.alpha.min() >= 0 and bal.alpha.sum().item() == pytest.approx(1.0)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    bal.close()


def test_mgda_gives_a_task_without_labels_zero_weight_and_a_lone_task_all_of_it() -> None:
    model, inputs, labels, mask = setup()
    mask[:, 2] = False
    labels[:, 2] = float("nan")
    bal = mgda_step(model, inputs, labels, mask)
    assert bal.alpha[2].item() == 0.0 and bal.alpha[:2].sum().item() == pytest.approx(1.0)
    mask[:, 1] = False
    bal = mgda_step(model, inputs, labels, mask)
    assert bal.alpha.tolist() == [1.0, 0.0, 0.0]
    mgda = {n: p.grad.clone() for n, p in model.named_parameters()}
    torch.testing.assert_close(mgda, plain_grads(model, inputs, labels, mask))  # one task: its plain gradient


def test_mgda_captures_only_training_forwards_and_close_removes_its_hooks() -> None:
    model, inputs, labels, mask = setup()
    bal = MGDAUB(3, model.representation())
    with torch.no_grad():
        model(*inputs)
    assert bal._captured == []
    bal.close()
    model(*inputs)
    assert bal._captured == []
