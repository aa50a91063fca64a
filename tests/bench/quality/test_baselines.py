"""Quality 7 (bench/quality/baselines.py): the goal's arithmetic, the paired candidate gains, the census table."""

from __future__ import annotations

import pyarrow as pa
import pytest

from bench.quality.baselines import CANDIDATES, MODELS, OURS, jobs_for, merge, models_for, to_train
from bench.quality.baselines_render import (
    candidate_cells,
    goal_matrix,
    goal_rows,
    provenance_text,
    results_table,
)
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


def test_identical_runs_are_neither_a_win_nor_a_loss() -> None:
    """ple_auto that bins nothing trains the default model: a tie, never 'worse in every seed'."""
    base = [rec(OURS, 0, 0.80, 1.0), rec(OURS, 1, 0.70, 1.0)]
    cells, wins, losses = candidate_cells({OURS: base, "x": [{**r, "label": "x"} for r in base]}, OURS, "x")
    assert cells == ["identical in every seed"] * 2 and (wins, losses) == (0, 0)


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


def test_the_synthetic_table_is_the_generators_draw_and_its_spec_reads_it(tmp_path) -> None:
    """Ma et al.'s x and y as columns, a one-value categorical the spec needs, and `x*` covering the 100 inputs
    when the bench runner (job_spec) expands the spec's pattern as train() does."""
    import numpy as np
    import pyarrow.parquet as pq

    from bench.quality.datasets import SYNTHETIC_SPEC
    from bench.quality.runner import Job, job_spec
    from bench.quality.synthetic.config import SynthConfig
    from bench.quality.synthetic.data import make_data
    from bench.quality.synthetic_table import build as build_synthetic

    cfg = SynthConfig(n_train=60, n_test=20)
    table = build_synthetic(cfg, p=0.5, seed=3)
    draw = make_data(0.5, cfg, np.random.default_rng(3))
    assert table.num_rows == 80 and set(table.column("segment").to_pylist()) == {"all"}
    np.testing.assert_array_equal(table.column("task_b").to_numpy()[:60], draw["y_train"][:, 1].numpy())
    np.testing.assert_array_equal(table.column("x7").to_numpy()[60:], draw["x_test"][:, 7].numpy())
    pq.write_table(table, tmp_path / "synthetic.parquet")
    spec = job_spec(Job(str(SYNTHETIC_SPEC), str(tmp_path / "synthetic.parquet"), {"train.seed": 1}, "x"))
    assert [f.name for f in spec.features.numeric] == [f"x{j}" for j in range(100)]
    assert spec.score_weights() == {"task_a": 1.0, "task_b": 1.0} and spec.train.seed == 1


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


def test_reuse_trains_only_the_models_whose_saved_runs_miss_a_seed() -> None:
    saved = {"records": [{**rec(OURS, s, 0.8, 1.0), "dataset": "d"} for s in (0, 1)]
             + [{**rec("GBDT", 0, 0.8, 1.0), "dataset": "d"}, {**rec("GBDT", 1, 0.8, 1.0), "dataset": "other"}]}
    models = models_for(["ple_auto"])
    assert set(to_train(saved, "d", models, [0, 1], reuse=True)) == set(models) - {OURS}
    assert set(to_train(saved, "d", models, [0, 1, 2], reuse=True)) == set(models)  # seed 2 is missing
    assert to_train(saved, "d", models, [0, 1], reuse=False) == models


def test_a_partial_run_replaces_its_models_records_keeps_the_others_and_says_so() -> None:
    first = {"provenance": "First.", "seeds": [0], "wall_seconds": 600, "workers": 2, "jobs": 2, "models": [OURS, "GBDT"]}
    saved = {"records": [{**rec(OURS, 0, 0.8, 1.0), "dataset": "d"}, {**rec("GBDT", 0, 0.7, 1.0), "dataset": "d"},
                         {**rec(OURS, 0, 0.5, 1.0), "dataset": "other"}], "runs": {"d": first}}
    later = {**first, "provenance": "Later.", "wall_seconds": 60, "jobs": 2, "models": [OURS, f"{OURS} + ple_auto"]}
    merge(saved, "d", [{**rec(OURS, 0, 0.9, 1.0), "dataset": "d"}, {**rec(f"{OURS} + ple_auto", 0, 0.9, 1.0),
                                                                      "dataset": "d"}], later)
    by = {(r["dataset"], r["label"]): r["metrics"]["test"]["tasks"]["click"]["auc"] for r in saved["records"]}
    assert by == {("d", OURS): 0.9, ("d", "GBDT"): 0.7, ("d", f"{OURS} + ple_auto"): 0.9, ("other", OURS): 0.5}
    assert saved["runs"]["d"]["provenance"] == "First." and saved["runs"]["d"]["later"] == [later]
    text = provenance_text(saved["runs"]["d"], 3)
    assert "10 min wall for 2 runs" in text and f"Then: Later. It trained {OURS}, {OURS} + ple_auto (2 runs" in text
    every = [OURS, "GBDT", f"{OURS} + ple_auto"]
    full = {"provenance": "Full.", "seeds": [0], "wall_seconds": 900, "workers": 2, "jobs": 3, "models": every}
    merge(saved, "d", [{**rec(m, 0, 0.6, 1.0), "dataset": "d"} for m in every], full)  # all again: a new first run
    assert saved["runs"]["d"] == full and "later" not in full
    assert sorted(r["label"] for r in saved["records"] if r["dataset"] == "d") == sorted(every)
