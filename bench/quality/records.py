"""Reading the records that bench.quality.runner returns: a task's metric and its direction, groups of
records, and how far one setting is ahead of another against the seed noise."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable


def task_metric(rec: dict, task: str, split: str = "test") -> float | None:
    """AUC for binary tasks, RMSE for regression tasks."""
    m = rec["metrics"][split]["tasks"][task]
    return m.get("auc", m.get("rmse"))


def task_names(rec: dict) -> list[str]:
    return list(rec["metrics"]["test"]["tasks"])


def metric_name(rec: dict, task: str) -> str:
    return "AUC" if "auc" in rec["metrics"]["test"]["tasks"][task] else "RMSE"


def direction(rec: dict, metric: str) -> float:
    """+1 where higher is better (AUC, NDCG), -1 for a task scored by RMSE; multiply a gap by it."""
    return -1.0 if metric in rec["metrics"]["test"]["tasks"] and metric_name(rec, metric) == "RMSE" else 1.0


def group_by(recs: Iterable[dict], key: Callable[[dict], Hashable]) -> dict[Hashable, list[dict]]:
    """Records by key(record), groups in order of first appearance."""
    out: dict[Hashable, list[dict]] = {}
    for r in recs:
        out.setdefault(key(r), []).append(r)
    return out


def by_override(recs: Iterable[dict], field: str, values: Iterable) -> dict:
    """{value: the records trained with spec field `field` (e.g. "model.expert_dropout") set to it}."""
    recs = list(recs)
    return {v: [r for r in recs if r["overrides"][field] == v] for v in values}


def gap_and_noise(a: tuple[float, float], b: tuple[float, float], sign: float = 1.0) -> tuple[float, float]:
    """How far a (mean, std) is ahead of b, times the metric's direction, and the seed noise (the larger std)."""
    return sign * (a[0] - b[0]), max(a[1], b[1])
