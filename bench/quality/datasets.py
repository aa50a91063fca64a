"""The two datasets the ablation benchmarks (expert dropout, loss balancing) run on."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.quality.common import REPO
from bench.quality.runner import Job, task_metric
from training.demo_data import DemoConfig, write_demo

DEMO_SPEC = REPO / "configs" / "demo.yaml"
ML_SPEC = REPO / "bench" / "quality" / "specs" / "movielens.yaml"


@dataclass(frozen=True)
class Dataset:
    name: str
    spec_path: str
    data_path: str
    rows: int
    group_column: str | None  # NDCG per value of this column; None = per request (the trainer's own)
    ndcg_label: str
    smoke_overrides: dict

    def job(self, overrides: dict, label: str, smoke: bool) -> Job:
        extra = self.smoke_overrides if smoke else {}
        return Job(self.spec_path, self.data_path, {**overrides, **extra}, label, "ours", self.group_column)

    def ndcg(self, rec: dict) -> float | None:
        if self.group_column:
            return rec[f"ndcg@10_per_{self.group_column}"]
        return rec["metrics"]["test"]["ndcg@10"]


def demo(rows: int = 100_000) -> Dataset:
    """configs/demo.yaml on freshly generated demo data (generator seed 0) in a temp dir."""
    out = Path(tempfile.mkdtemp(prefix="mtl-bench-demo-"))
    write_demo(out, DemoConfig(rows=rows, seed=0))
    return Dataset("demo", str(DEMO_SPEC), str(out), rows, None, "NDCG@10 per request",
                   {"train.epochs": 1})


def movielens(smoke: bool = False) -> Dataset:
    """bench/quality/specs/movielens.yaml on the ML-100k log (60 users for smoke runs)."""
    import pyarrow.parquet as pq

    from bench.quality.movielens import smoke_data
    from bench.quality.movielens_data import write_dataset

    path = smoke_data() if smoke else write_dataset(0)
    return Dataset("MovieLens-100k", str(ML_SPEC), str(path), pq.read_metadata(path).num_rows, "user_id",
                   "NDCG@10 per user", {"train.epochs": 1})


def describe(ds: Dataset) -> dict:
    """What rendering needs of a dataset (saved with the runs, so --replot needs no data)."""
    return {"name": ds.name, "rows": ds.rows, "group_column": ds.group_column, "ndcg_label": ds.ndcg_label}


def from_description(d: dict) -> Dataset:
    return Dataset(d["name"], "", "", d["rows"], d["group_column"], d["ndcg_label"], {})


def task_names(rec: dict) -> list[str]:
    return list(rec["metrics"]["test"]["tasks"])


def metric_name(rec: dict, task: str) -> str:
    return "AUC" if "auc" in rec["metrics"]["test"]["tasks"][task] else "RMSE"


__all__ = ["Dataset", "demo", "describe", "from_description", "movielens", "task_metric", "task_names",
           "metric_name"]
