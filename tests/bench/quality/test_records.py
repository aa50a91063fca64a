"""Reading run records: metric direction, grouping, and gaps against the seed noise."""

from __future__ import annotations

from bench.quality.records import by_override, direction, gap_and_noise, group_by, metric_name, task_metric


def record(seed: int, balancing: str, auc: float, rmse: float) -> dict:
    tasks = {"click": {"auc": auc, "observed": 10}, "rating": {"rmse": rmse, "observed": 5}}
    return {"label": balancing, "overrides": {"train.seed": seed, "train.loss_balancing": balancing},
            "metrics": {"test": {"tasks": tasks}, "valid": {"tasks": tasks}}}


RECS = [record(0, "fixed", 0.7, 1.0), record(0, "gradnorm", 0.8, 0.9), record(1, "fixed", 0.6, 1.1)]


def test_task_metric_and_direction_follow_the_task_type() -> None:
    rec = RECS[0]
    assert (task_metric(rec, "click"), task_metric(rec, "rating")) == (0.7, 1.0)
    assert (metric_name(rec, "click"), metric_name(rec, "rating")) == ("AUC", "RMSE")
    assert (direction(rec, "click"), direction(rec, "rating")) == (1.0, -1.0)
    assert direction(rec, "ndcg@10_per_user_id") == 1.0  # not a task: a ranking metric, higher is better


def test_groups_keep_every_record_once_in_order() -> None:
    groups = by_override(RECS, "train.loss_balancing", ("fixed", "uncertainty", "gradnorm"))
    assert [len(v) for v in groups.values()] == [2, 0, 1]
    assert [r["overrides"]["train.seed"] for r in groups["fixed"]] == [0, 1]
    assert list(group_by(RECS, lambda r: r["label"])) == ["fixed", "gradnorm"]


def test_gap_is_signed_by_direction_and_noise_is_the_larger_std() -> None:
    assert gap_and_noise((0.9, 0.02), (0.8, 0.05)) == (0.9 - 0.8, 0.05)
    assert gap_and_noise((0.9, 0.02), (0.8, 0.01), sign=-1.0) == (-(0.9 - 0.8), 0.02)  # RMSE: higher is worse
