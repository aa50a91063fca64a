"""The two datasets the ablation benchmarks (expert dropout, loss balancing) run on, and their shared run:
one spec field set to each value, over seeds, on both datasets."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.quality.common import REPO, fmt_ms
from bench.quality.records import metric_name, task_metric, task_names
from bench.quality.runner import Job, run_jobs
from training.data.demo import DemoConfig, write_demo

DEMO_SPEC = REPO / "configs" / "demo.yaml"
ML_SPEC = REPO / "bench" / "quality" / "specs" / "movielens.yaml"
CENSUS_SPEC = REPO / "bench" / "quality" / "specs" / "census.yaml"
SYNTHETIC_SPEC = REPO / "bench" / "quality" / "specs" / "synthetic.yaml"


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

    def metric_header(self, rec: dict) -> list[str]:
        """Names of metric_cells' columns: each task and its metric, then NDCG."""
        return [*[f"{t} {metric_name(rec, t)}" for t in task_names(rec)], self.ndcg_label]

    def metric_cells(self, recs: list[dict]) -> list[str]:
        """Each task's test metric, then NDCG: mean ± std over the records (seeds) of one setting."""
        tasks = [fmt_ms(task_metric(r, t) for r in recs) for t in task_names(recs[0])]
        return [*tasks, fmt_ms(self.ndcg(r) for r in recs)]


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


def census(smoke: bool = False) -> Dataset:
    """bench/quality/specs/census.yaml on UCI Adult (bench/quality/census_data.py); 3,000 rows for smoke runs."""
    import pyarrow.parquet as pq

    from bench.quality.census_data import write_dataset

    path = write_dataset()
    if smoke:
        small = Path(tempfile.mkdtemp(prefix="mtl-bench-census-")) / "adult_small.parquet"
        pq.write_table(pq.read_table(path).slice(0, 3_000), small)
        path = small
    return Dataset("census (UCI Adult)", str(CENSUS_SPEC), str(path), pq.read_metadata(path).num_rows, None,
                   "NDCG (n/a: no requests)", {"train.epochs": 1})


def synthetic(smoke: bool = False) -> Dataset:
    """bench/quality/specs/synthetic.yaml on Ma et al.'s generator at p = 0.5 (bench/quality/synthetic_table.py);
    3,000 rows for smoke runs."""
    import pyarrow.parquet as pq

    from bench.quality.synthetic_table import write_dataset

    path = write_dataset()
    if smoke:
        small = Path(tempfile.mkdtemp(prefix="mtl-bench-synthetic-")) / "synthetic_small.parquet"
        pq.write_table(pq.read_table(path).slice(0, 3_000), small)
        path = small
    return Dataset("Ma et al. synthetic, p = 0.5", str(SYNTHETIC_SPEC), str(path), pq.read_metadata(path).num_rows,
                   None, "NDCG (n/a: no requests)", {"train.epochs": 1})


def describe(ds: Dataset) -> dict:
    """What rendering needs of a dataset (saved with the runs, so --replot needs no data)."""
    return {"name": ds.name, "rows": ds.rows, "group_column": ds.group_column, "ndcg_label": ds.ndcg_label}


def from_description(d: dict) -> Dataset:
    return Dataset(d["name"], "", "", d["rows"], d["group_column"], d["ndcg_label"], {})


def run_ablation(ns: argparse.Namespace, made_by: str, field: str, values: tuple,
                 label: Callable[[str, object], str], per_dataset: tuple[str, Callable[[Dataset], dict]] | None = None,
                 ) -> dict:
    """Our MMoE on each dataset with spec `field` set to each value, seeds 0..ns.seeds - 1 (2 for --smoke).

    Returns what is saved: {"provenance", "seeds", "datasets", "records"}, each record tagged with its
    dataset; per_dataset = (key, fn) also saves {key: {dataset: fn(dataset)}}, fn run after its dataset's jobs.
    """
    seeds = list(range(2 if ns.smoke else ns.seeds))
    sets = {"demo": demo(5_000 if ns.smoke else ns.demo_rows), "movielens": movielens(ns.smoke)}
    records, extra = [], {}
    for name, ds in sets.items():
        jobs = [ds.job({field: value, "train.seed": seed}, label(name, value), ns.smoke)
                for seed in seeds for value in values]
        records += [{**r, "dataset": name} for r in run_jobs(jobs, ns.workers)]
        if per_dataset:
            extra[name] = per_dataset[1](ds)
    saved = {"provenance": made_by, "seeds": seeds, "datasets": {n: describe(ds) for n, ds in sets.items()},
             "records": records}
    return {**saved, per_dataset[0]: extra} if per_dataset else saved


def by_dataset(saved: dict) -> dict[str, tuple[Dataset, list[dict]]]:
    """{dataset name: (its description, its records)} of an ablation's saved runs."""
    return {name: (from_description(d), [r for r in saved["records"] if r["dataset"] == name])
            for name, d in saved["datasets"].items()}
