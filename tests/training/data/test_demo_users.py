"""The demo's simulated users know the generator's truth for any shown row (training/data/demo_users.py)."""

from __future__ import annotations

import numpy as np
import pytest

from training.data.demo import DemoConfig, generate_with_truth
from training.data.demo_users import DemoUsers, Shown


def _shown(table, position) -> Shown:
    return Shown(user_id=table.column("user_id").to_pylist(), item_id=table.column("item_id").to_pylist(),
                 device=table.column("device").to_pylist(), hour=table.column("hour").to_pylist(), position=position)


def test_truth_of_shown_rows_is_the_generators_truth() -> None:
    cfg = DemoConfig(rows=2000, seed=3)
    table = generate_with_truth(cfg)
    truth = DemoUsers(cfg).truth(_shown(table, np.zeros(table.num_rows)))
    for ours, theirs in (("p_click", "true_click"), ("watch_seconds", "true_watch_time"), ("p_like", "true_like"),
                         ("rating", "true_rating")):
        np.testing.assert_allclose(truth[ours], table.column(theirs).to_numpy(), rtol=1e-12)


def test_responses_follow_the_truth_and_the_position_bias() -> None:
    cfg = DemoConfig(rows=20_000, seed=1)
    table = generate_with_truth(cfg)
    users = DemoUsers(cfg, position_bias=1.0)
    rng = np.random.default_rng(0)
    top, low = _shown(table, np.zeros(table.num_rows)), _shown(table, np.full(table.num_rows, 9))
    clicks = {name: np.zeros(table.num_rows) for name in ("top", "low")}
    for name, shown in (("top", top), ("low", low)):
        for row, event, value in users.respond(shown, rng):
            if event == "click":
                clicks[name][row] += 1
                assert value is None
            elif event == "like":
                assert value in (0.0, 1.0)
            elif event == "rating":
                assert 1 <= value <= 5
    expected = table.column("true_click").to_numpy().mean()
    assert clicks["top"].mean() == pytest.approx(expected, abs=0.01)  # examined at the top: (1+0)^-1 = 1
    assert clicks["low"].mean() == pytest.approx(expected / 10, abs=0.005)  # at position 9: (1+9)^-1


def test_an_id_outside_the_world_is_named() -> None:
    cfg = DemoConfig(rows=2000)
    with pytest.raises(ValueError, match="'i99999' is not an id"):
        DemoUsers(cfg).truth(Shown(["u0"], ["i99999"], ["tv"], [3], np.zeros(1)))
