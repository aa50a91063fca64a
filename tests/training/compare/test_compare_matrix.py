"""The help/hurt statistics on constructed numbers: paired by seed, direction-aware, and the verdict words."""

from __future__ import annotations

import math

import pytest

from training.compare.matrix import Row, help_hurt
from training.compare.stats import HELPS, HURTS, NOISE, ONE_SEED, gain, paired_gains, verdict
from training.compare.variants import ALL_TASKS, Variant, single

VARIANTS = [Variant(ALL_TASKS), single("click"), single("rating"), Variant("pair click+rating", ("click", "rating"),
                                                                          "pair")]
ROWS = [Row("click", "auc", False), Row("rating", "rmse", True)]


def records(variant: str, **by_task: list[float]) -> list[dict]:
    seeds = len(next(iter(by_task.values())))
    return [{"variant": variant, "seed": s, "metrics": {t: v[s] for t, v in by_task.items()}} for s in range(seeds)]


def test_gain_is_positive_when_better_in_either_direction() -> None:
    assert gain(0.80, 0.75, lower_is_better=False) == pytest.approx(0.05)  # AUC up
    assert gain(0.90, 1.00, lower_is_better=True) == pytest.approx(0.10)  # RMSE down
    assert gain(1.10, 1.00, lower_is_better=True) == pytest.approx(-0.10)
    assert gain(None, 1.0, lower_is_better=True) is None


def test_gains_are_paired_by_seed_not_by_order() -> None:
    model, base = {2: 0.7, 0: 0.9, 1: 0.8}, {0: 0.8, 1: 0.8, 2: 0.8, 3: 0.1}
    assert paired_gains(model, base, lower_is_better=False) == pytest.approx([0.1, 0.0, -0.1])


def test_verdict_words_follow_the_seed_spread() -> None:
    assert verdict([0.02, 0.03, 0.025]).word == HELPS
    assert verdict([-0.02, -0.03, -0.025]).word == HURTS
    assert verdict([0.02, -0.01, 0.0]).word == NOISE  # mean 0.0033 < std 0.015
    assert verdict([0.05]).word == ONE_SEED  # no spread to judge by
    v = verdict([])
    assert v.n == 0 and math.isnan(v.mean) and v.text() == "n/a"
    assert verdict([0.02, 0.03, 0.025]).text() == "helps (+0.0250 ± 0.0050)"


def test_matrix_has_a_row_per_task_and_a_column_per_multi_task_variant() -> None:
    recs = [*records(ALL_TASKS, click=[0.80, 0.81, 0.82], rating=[1.10, 1.12, 1.11]),  # rating worse: higher RMSE
            *records("single-task click", click=[0.75, 0.76, 0.77]),
            *records("single-task rating", rating=[1.00, 1.01, 1.00]),
            *records("pair click+rating", click=[0.76, 0.75, 0.78], rating=[0.90, 0.92, 0.91])]
    m = help_hurt(recs, ROWS, VARIANTS)
    assert m.columns == [ALL_TASKS, "pair click+rating"]  # single-task models are the baseline, not a column
    assert set(m.cells) == {(r.task, c) for r in ROWS for c in m.columns}
    assert m.words() == {ALL_TASKS: {"click": HELPS, "rating": HURTS},
                         "pair click+rating": {"click": NOISE, "rating": HELPS}}
    assert m.cells["rating", ALL_TASKS].mean == pytest.approx(-(0.10 + 0.11 + 0.11) / 3)


def test_a_pair_has_cells_only_for_its_own_tasks() -> None:
    variants = [*VARIANTS[:3], single("like"), Variant("pair click+like", ("click", "like"), "pair")]
    recs = [*records("single-task click", click=[0.7, 0.7]), *records("pair click+like", click=[0.8, 0.9])]
    m = help_hurt(recs, [*ROWS, Row("like", "auc", False)], variants)
    assert ("rating", "pair click+like") not in m.cells and m.cells["click", "pair click+like"].word == HELPS
    assert m.cells["click", ALL_TASKS].n == 0  # the spec's model never ran: no pairs, no verdict
