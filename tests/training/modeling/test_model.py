"""Expert dropout: renormalized gate weights in training, a plain softmax in eval. Every arch maps
inputs to one head per task, and says truthfully which parameters belong to one task only."""

from __future__ import annotations

import pytest
import torch

from training.modeling.model import (
    ARCHS,
    PLE,
    Gate,
    MMoE,
    ModelArgs,
    SharedBottom,
    SingleTask,
    build_model,
    shared_parameters,
    task_parameters,
)


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


def args(arch: str, tasks: tuple[str, ...] = ("a", "b"), levels: int = 2) -> ModelArgs:
    return ModelArgs(cardinalities=[5, 7], n_numeric=3, tasks=list(tasks), arch=arch, num_experts=3,
                     expert_hidden=[16, 8], tower_hidden=[8], embedding_dim=4, expert_dropout=0.5,
                     shared_experts=2, task_experts=2, levels=levels)


@pytest.mark.parametrize("arch, cls", [("mmoe", MMoE), ("omoe", MMoE), ("cgc", PLE), ("ple", PLE),
                                       ("shared_bottom", SharedBottom), ("single_task", SingleTask)])
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


def heads_depending_on(model: torch.nn.Module, n_tasks: int) -> dict[str, set[int]]:
    """Parameter name -> the tasks whose output gets a non-zero gradient in it (found by backprop)."""
    torch.manual_seed(1)
    cat, num = torch.randint(0, 5, (32, 2)), torch.randn(32, 3)
    deps: dict[str, set[int]] = {n: set() for n, _ in model.named_parameters()}
    for t in range(n_tasks):
        model.zero_grad()
        model(cat, num)[:, t].sum().backward()
        for n, p in model.named_parameters():
            if p.grad is not None and p.grad.abs().sum() > 0:
                deps[n].add(t)
    return deps


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("levels", [1, 3])
def test_task_parts_are_exactly_the_parameters_only_that_task_depends_on(arch: str, levels: int) -> None:
    tasks = ("a", "b", "c")
    model = build_model(args(arch, tasks, levels)).eval()
    deps = heads_depending_on(model, len(tasks))
    for t in range(len(tasks)):
        own = set(task_parameters(model, t))
        assert own == {n for n, ts in deps.items() if ts == {t}}, (arch, t)
    shared = set(shared_parameters(model, len(tasks)))
    assert shared == {n for n, ts in deps.items() if len(ts) > 1}
    if arch == "single_task":
        assert not shared


def test_cgc_is_one_level_and_ple_stacks_levels_with_a_shared_gate_below_the_top() -> None:
    cgc, ple = PLE(args("cgc")), PLE(args("ple", levels=3))
    assert len(cgc.levels) == 1 and cgc.levels[0].shared_gate is None
    assert len(ple.levels) == 3
    assert [lvl.shared_gate is None for lvl in ple.levels] == [False, False, True]
    # A task gate mixes its 2 own experts and the 2 shared ones; the shared gate every expert.
    assert ple.levels[0].task_gates[0].linear.out_features == 4
    assert ple.levels[0].shared_gate.linear.out_features == 2 * 2 + 2
    assert ple.shared_slots() == [False, False, True, True]


@pytest.mark.parametrize("arch", ["cgc", "ple"])
def test_expert_dropout_applies_to_cgc_and_ple_gates_in_training_only(arch: str) -> None:
    torch.manual_seed(0)
    model = build_model(args(arch))
    cat, num = torch.randint(0, 5, (512, 2)), torch.randn(512, 3)
    train_levels = model.train().gate_levels(cat, num)
    eval_levels = model.eval().gate_levels(cat, num)
    for g in train_levels:  # (T, B, K+S), p = 0.5
        assert 0.3 < (g == 0).float().mean().item() < 0.5
        torch.testing.assert_close(g.sum(-1), torch.ones(g.shape[:2]))
    for g in eval_levels:
        assert (g > 0).all()
    assert len(eval_levels) == (1 if arch == "cgc" else 2)
