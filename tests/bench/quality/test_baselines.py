"""Quality 7 (bench/quality/baselines.py): the goal's arithmetic, the paired candidate gains, the census table."""

from __future__ import annotations

import pyarrow as pa
import pytest

from bench.quality.baselines import CANDIDATES, MODELS, OURS, jobs_for, models_for
from bench.quality.baselines_render import candidate_cells, goal_matrix, goal_rows, results_table
from bench.quality.census_data import build
from bench.quality.datasets import Dataset


def rec(label: str, seed: int, auc: float, rmse: float) -> dict:
    tasks = {"click": {"auc": auc}, "rating": {"rmse": rmse}}
    return {"label": label, "overrides": {"train.seed": seed}, "metrics": {"test": {"tasks": tasks}},
            "epoch_seconds": [1.0], "epochs": 3, "train_seconds": 3.0}


def groups(values: dict[str, tuple[float, float]], seeds: int = 2) -> dict[str, list[dict]]:
    return {label: [rec(label, s, auc, rmse) for s in range(seeds)] for label, (auc, rmse) in values.items()}


def test_goal_needs_the_best_peer_and_half_the_way_to_a_leading_gbdt() -> None:
    g = groups({OURS: (0.80, 1.00), "DeepCTR-Torch MMOE": (0.70, 1.10), "torch-rechub MMOE": (0.76, 0.90),
                "GBDT": (0.84, 1.20)})
    click, rating = goal_rows(g, OURS)
    assert click["peer"] == "torch-rechub MMOE" and click["closed"] == pytest.approx(0.5) and click["met"]
    # rating: the best peer is the lower RMSE (rechub 0.90); ours is worse, and the GBDT trails it (n/a).
    assert rating["peer"] == "torch-rechub MMOE" and rating["closed"] is None and not rating["met"]
    g[OURS] = [rec(OURS, s, 0.79, 0.90) for s in range(2)]
    click, rating = goal_rows(g, OURS)
    assert click["closed"] == pytest.approx(0.375) and not click["met"] and rating["met"]


def test_candidate_gains_are_paired_by_seed_in_the_metric_direction() -> None:
    base = [rec(OURS, 0, 0.80, 1.0), rec(OURS, 1, 0.70, 1.0)]
    other = [rec("x", 1, 0.72, 1.1), rec("x", 0, 0.81, 0.9)]
    cells, wins, losses = candidate_cells({OURS: base, "x": other}, OURS, "x")
    assert cells[0].startswith("+0.0150") and "(2/2)" in cells[0]  # click: +0.01 and +0.02
    assert "(1/2)" in cells[1]  # rating: one seed better (lower RMSE), one worse
    assert (wins, losses) == (1, 0)


def test_no_requests_shows_ndcg_as_na() -> None:
    table = results_table(groups({OURS: (0.8, 1.0)}, seeds=1), None, "NDCG")
    assert "| our MMoE | 0.8000 ± 0.0000 | 1.0000 ± 0.0000 | n/a |" in table


def test_every_model_runs_on_every_seed_with_one_change_per_candidate() -> None:
    ds = Dataset("d", "spec.yaml", "data.parquet", 10, None, "NDCG", {"train.epochs": 1})
    jobs = jobs_for(ds, [0, 1], smoke=False)
    assert len(jobs) == 2 * len(MODELS) and {j.label for j in jobs} == set(MODELS)
    for name, overrides in CANDIDATES.items():
        job = next(j for j in jobs if j.label == f"{OURS} + {name}")
        assert job.overrides == {**overrides, "train.seed": 0}


def test_census_labels_follow_income_and_marital_status() -> None:
    n = 3
    adult = pa.table({
        **{c: ["x"] * n for c in ("workclass", "education", "occupation", "relationship", "race", "gender",
                                  "native-country")},
        **{c: [1, 2, 3] for c in ("age", "fnlwgt", "educational-num", "capital-gain", "capital-loss",
                                  "hours-per-week")},
        "income": [">50K", "<=50K", ">50K"], "marital-status": ["Never-married", "Divorced", "Married-civ-spouse"],
    })
    t = build(adult)
    assert t.column("income_50k").to_pylist() == [1, 0, 1]
    assert t.column("never_married").to_pylist() == [1, 0, 0]
    assert "marital_status" not in t.column_names and "native_country" in t.column_names


def test_candidates_can_be_left_out_but_never_the_baselines() -> None:
    models = models_for(["ple"])
    assert set(models) == set(MODELS) - {f"{OURS} + {c}" for c in CANDIDATES if c != "ple"}
    assert {OURS, "GBDT", "DeepCTR-Torch MMOE", "torch-rechub MMOE"} <= set(models)


def test_goal_matrix_judges_each_candidate_in_place_of_our_mmoe() -> None:
    g = groups({OURS: (0.75, 0.95), f"{OURS} + ple": (0.80, 0.95), "DeepCTR-Torch MMOE": (0.70, 1.10),
                "torch-rechub MMOE": (0.76, 0.90), "GBDT": (0.84, 1.20)})
    lines = goal_matrix(g, OURS, ["ple", "cross"]).splitlines()
    assert len(lines) == 4  # header, rule, ours, ple (cross was not run)
    assert lines[2].startswith(f"| {OURS} | not met (-0.0100 vs peer) | not met (-0.0500 vs peer) |")
    assert lines[3].startswith(f"| {OURS} + ple | **met** (50 % closed) | not met (-0.0500 vs peer) |")
