"""Expert dropout: renormalized gate weights in training, a plain softmax in eval."""

from __future__ import annotations

import pytest
import torch

from training.modeling.model import Gate, MMoE, ModelArgs, SharedBottom, SingleTask, build_model


def gate_and_input(p: float, rows: int = 4096, experts: int = 8) -> tuple[Gate, torch.Tensor]:
    torch.manual_seed(0)
    return Gate(16, experts, expert_dropout=p), torch.randn(rows, 16)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_training_gate_rows_sum_to_one_with_zeros_at_rate_p(p: float) -> None:
    gate, x = gate_and_input(p)
    w = gate.train()(x)  # (B, E)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(len(x)))
    zero_rate = (w == 0).float().mean().item()
    # A row that lost every expert keeps them all, so the observed rate sits a hair under p.
    assert zero_rate == pytest.approx(p * (1 - p ** 7), abs=0.02)
    assert (w >= 0).all()


def test_training_gate_never_divides_by_zero_even_with_p_near_one() -> None:
    gate, x = gate_and_input(0.999)
    w = gate.train()(x)
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(len(x)))
    loss = w.pow(2).sum()
    loss.backward()
    assert all(torch.isfinite(prm.grad).all() for prm in gate.parameters())


def test_kept_weights_keep_their_proportions() -> None:
    gate, x = gate_and_input(0.3)
    dropped = gate.train()(x)
    plain = torch.softmax(gate.linear(x), dim=-1)
    kept = dropped > 0
    renorm = torch.where(kept, plain, torch.zeros_like(plain))
    renorm = renorm / renorm.sum(dim=1, keepdim=True)
    torch.testing.assert_close(dropped, renorm)


def test_eval_gate_is_deterministic_and_a_plain_softmax() -> None:
    gate, x = gate_and_input(0.5)
    gate.eval()
    a, b = gate(x), gate(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(a, torch.softmax(gate.linear(x), dim=-1))
    assert (a > 0).all()


def args(arch: str) -> ModelArgs:
    return ModelArgs(cardinalities=[5, 7], n_numeric=3, tasks=["a", "b"], arch=arch, num_experts=3,
                     expert_hidden=[16, 8], tower_hidden=[8], embedding_dim=4, expert_dropout=0.5)


@pytest.mark.parametrize("arch, cls", [("mmoe", MMoE), ("omoe", MMoE), ("shared_bottom", SharedBottom),
                                       ("single_task", SingleTask)])
def test_every_arch_maps_inputs_to_one_raw_head_per_task(arch: str, cls: type) -> None:
    model = build_model(args(arch)).eval()
    assert isinstance(model, cls)
    cat, num = torch.randint(0, 5, (10, 2)), torch.randn(10, 3)
    out = model(cat, num)
    assert out.shape == (10, 2)
    torch.testing.assert_close(out, model(cat, num), rtol=0, atol=0)  # eval: no randomness


def test_omoe_shares_one_gate_and_mmoe_has_one_per_task() -> None:
    x = torch.randn(6, MMoE(args("mmoe")).inputs.out_dim)
    assert len(MMoE(args("mmoe")).gates) == 2
    omoe = MMoE(args("omoe")).eval()
    gates = omoe.gate_weights(x)  # (T, B, E)
    torch.testing.assert_close(gates[0], gates[1])


def test_shared_layer_is_the_experts_last_linear() -> None:
    model = MMoE(args("mmoe"))
    shared = model.shared_layer()
    assert len(shared) == 3 and all(p.shape == (8, 16) for p in shared)
