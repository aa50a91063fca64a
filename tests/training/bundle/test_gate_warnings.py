"""report.md warns when a task's gate polarizes onto one expert or never leaves uniform mixing."""

from __future__ import annotations

import numpy as np

from training.bundle.report import _gate_section
from training.evaluation.metrics import gate_stats, gate_warnings


def gates(rows: list[list[float]], n: int = 200) -> np.ndarray:
    """(T, N, E) gate weights: each task's rows all equal to its row of `rows`."""
    return np.repeat(np.asarray(rows, dtype=np.float64)[:, None, :], n, axis=1)


def test_a_polarized_gate_gets_a_warning_naming_its_task_and_what_to_try() -> None:
    stats = gate_stats(gates([[0.94, 0.02, 0.02, 0.02], [0.4, 0.3, 0.2, 0.1]]), ["click", "like"])
    warnings = gate_warnings(stats)
    assert len(warnings) == 1
    assert "'click' polarized: 94%" in warnings[0] and "expert 0" in warnings[0]
    assert "model.expert_dropout" in warnings[0] and "model.num_experts" in warnings[0]


def test_near_uniform_gates_get_one_warning_listing_them() -> None:
    stats = gate_stats(gates([[0.25, 0.25, 0.25, 0.25], [0.26, 0.24, 0.25, 0.25], [0.6, 0.2, 0.1, 0.1]]),
                       ["click", "like", "rating"])
    warnings = gate_warnings(stats)
    assert len(warnings) == 1
    assert "['click', 'like'] are near-uniform" in warnings[0] and "never specialize" in warnings[0]
    assert "shared_bottom" in warnings[0]


def test_rows_that_each_pick_one_expert_are_not_uniform() -> None:
    """Uniform on average, but every row leans on one expert: the experts specialize by row."""
    one_hot = np.eye(4)[np.arange(400) % 4] * 0.97 + 0.0075  # (N, E), each row 97.75% on one expert
    stats = gate_stats(one_hot[None], ["click"])
    assert stats["click"]["effective_experts"] > 3.9
    assert gate_warnings(stats) == []


def test_healthy_gates_get_no_warning_and_the_report_shows_the_warnings() -> None:
    healthy = gate_stats(gates([[0.5, 0.3, 0.15, 0.05]]), ["click"])
    assert gate_warnings(healthy) == []
    assert "Warning" not in "\n".join(_gate_section({"gates": healthy}, "valid", object()))
    polarized = gate_stats(gates([[0.97, 0.01, 0.01, 0.01]]), ["click"])
    section = "\n".join(_gate_section({"gates": polarized}, "valid", object()))
    assert "> **Warning:** gate of task 'click' polarized" in section
