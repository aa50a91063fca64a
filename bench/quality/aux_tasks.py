"""Auxiliary tasks (`tasks[].serve: false`): does a head trained on a column the served model cannot read make a
served head better, beyond seed noise?

Each dataset is trained twice per seed, through the normal training path (bench/quality/runner.py), with the
same data, split, init seed and every other key: without the auxiliary head, and with it (`serve: false`, so
the served heads and the ranking are the same set). Gains are paired by seed.

  demo       configs/demo.yaml; aux `true_click` = regression on `true_click_prob`, the generator's noiseless
             click probability (no feature reads it: the most informative auxiliary label there can be)
  MovieLens  bench/quality/specs/movielens.yaml serving watch and like; aux `rating` (1-5, observed on
             positives), which the served model does not read and no longer serves

    .venv/bin/python -m bench.quality.aux_tasks            # 2 datasets x 2 variants x 5 seeds, small data
    .venv/bin/python -m bench.quality.aux_tasks --smoke    # tiny data, 1 epoch, 2 seeds; temp dir
    .venv/bin/python -m bench.quality.aux_tasks --replot   # the section again from the saved runs
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from bench.quality import datasets as DS
from bench.quality.common import (
    RESULTS_DIR,
    Output,
    command_line,
    fmt_ms,
    md_table,
    quality_args,
    saved_or_run,
)
from bench.quality.movielens_data import write_dataset
from bench.quality.mtl_archs import verdict
from bench.quality.records import direction, metric_name, task_metric
from bench.quality.runner import run_jobs
from bench.quality.synthetic.stats import counts
from training.spec import load_spec

SECTION = "quality-aux-tasks"
RESULTS = RESULTS_DIR / "aux_tasks.json"
VARIANTS = ("no aux", "+ aux (serve: false)")
NDCG = "ndcg"


def demo_case(rows: int) -> tuple[DS.Dataset, list[dict], dict]:
    ds = DS.demo(rows)
    tasks = [t.model_dump() for t in load_spec(DS.DEMO_SPEC, data_path=ds.data_path).tasks]
    aux = {"name": "true_click", "type": "regression", "group": "engagement", "column": "true_click_prob",
           "serve": False}
    return ds, tasks, aux


def movielens_case(users: int) -> tuple[DS.Dataset, list[dict], dict]:
    """The MovieLens log of users 1..`users` (rows of the others dropped), serving watch and like."""
    table = pq.read_table(write_dataset(0))
    table = table.filter(np.asarray(table.column("user_id").to_numpy() <= users))
    path = Path(tempfile.mkdtemp(prefix="mtl-bench-aux-ml-")) / "ml100k_users.parquet"
    pq.write_table(table, path)
    ds = DS.Dataset("MovieLens-100k", str(DS.ML_SPEC), str(path), table.num_rows, "user_id", "NDCG@10 per user",
                    {"train.epochs": 1})
    tasks = [t.model_dump() for t in load_spec(DS.ML_SPEC, data_path=str(path)).tasks]
    rating = next(t for t in tasks if t["name"] == "rating")
    return ds, [t for t in tasks if t is not rating], {**rating, "serve": False}


def run(ns: argparse.Namespace, made_by: str) -> dict:
    """Every (dataset, variant, seed); the records carry their dataset and variant (the label)."""
    seeds = list(range(2 if ns.smoke else ns.seeds))
    cases = {"demo": demo_case(3_000 if ns.smoke else ns.demo_rows),
             "movielens": movielens_case(20 if ns.smoke else ns.ml_users)}
    records, aux_names = [], {}
    for name, (ds, tasks, aux) in cases.items():
        aux_names[name] = aux["name"]
        # No feedback: its labels would need a rule for the aux column too, and no served event gives it.
        jobs = [ds.job({"tasks": tasks + [aux] * (v == VARIANTS[1]), "feedback": None, "train.seed": seed,
                        "train.epochs": ns.epochs, "train.threads": 1}, v, ns.smoke)
                for seed in seeds for v in VARIANTS]
        records += [{**r, "dataset": name} for r in run_jobs(jobs, ns.workers)]
    return {"provenance": made_by, "seeds": seeds, "aux": aux_names, "records": records,
            "datasets": {n: DS.describe(ds) for n, (ds, _, _) in cases.items()}}


def value(ds: DS.Dataset, rec: dict, metric: str) -> float | None:
    return ds.ndcg(rec) if metric == NDCG else task_metric(rec, metric)


def paired(ds: DS.Dataset, recs: list[dict], metric: str) -> np.ndarray:
    """(seeds,) the aux run's metric minus the same seed's run without it, signed so + = better."""
    base = {r["overrides"]["train.seed"]: r for r in recs if r["label"] == VARIANTS[0]}
    out = []
    for r in (r for r in recs if r["label"] == VARIANTS[1]):
        a, b = value(ds, r, metric), value(ds, base[r["overrides"]["train.seed"]], metric)
        if a is not None and b is not None:
            out.append(direction(r, metric) * (a - b))
    return np.asarray(out)


def served_metrics(recs: list[dict], aux: str) -> list[str]:
    """The served label tasks (not the ranking head, scored by NDCG) and NDCG."""
    first = next(r for r in recs if r["label"] == VARIANTS[0])
    return [t for t, m in first["metrics"]["test"]["tasks"].items() if t != aux and "ndcg" not in m] + [NDCG]


def table(ds: DS.Dataset, recs: list[dict], aux: str) -> str:
    metrics = served_metrics(recs, aux)
    first = recs[0]
    header = ["", *(ds.ndcg_label if m == NDCG else f"{m} {metric_name(first, m)}" for m in metrics),
              f"aux {aux} (test)"]
    rows = []
    for v in VARIANTS:
        rs = [r for r in recs if r["label"] == v]
        aux_cell = (f"{metric_name(rs[0], aux)} {fmt_ms(task_metric(r, aux) for r in rs)}" if v == VARIANTS[1]
                    else "-")
        rows.append([v, *(fmt_ms(value(ds, r, m) for r in rs) for m in metrics), aux_cell])
    gains = {m: paired(ds, recs, m) for m in metrics}
    rows.append(["paired gain (+ = aux helps)", *(verdict(list(gains[m])) for m in metrics), ""])
    rows.append(["seeds where aux is better (sign test)", *(counts(gains[m]) for m in metrics), ""])
    return md_table(header, rows)


def reading(results: dict, aux: dict) -> str:
    lines = []
    for name, (ds, recs) in results.items():
        words = {m: verdict(list(paired(ds, recs, m))).split(" ")[0].strip("*")
                 for m in served_metrics(recs, aux[name])}
        helped = [m for m, w in words.items() if w == "helps"]
        hurt = [m for m, w in words.items() if w == "hurts"]
        lines.append(f"- {ds.name}: the auxiliary `{aux[name]}` head helps "
                     + (", ".join(helped) if helped else "no served metric")
                     + " beyond seed noise (mean paired gain above its std)"
                     + (f"; it hurts {', '.join(hurt)}" if hurt else "") + ".")
    return "\n".join(lines)


def render(saved: dict) -> str:
    results = DS.by_dataset(saved)
    seeds = saved["seeds"]
    parts = [f"""## Quality 8. Auxiliary tasks (serve: false)

{saved["provenance"]}

Does a head trained on a label the served model cannot read, and that the bundle does not serve
(`tasks[].serve: false`), make the served heads better? Each dataset's spec trained with and without one auxiliary
head, seeds {seeds[0]}..{seeds[-1]}, everything else equal; test split metrics, mean ± std over seeds. The auxiliary
head shares the experts (MMoE, 4 experts) with the served heads and has its own gate and tower. *Paired gain*: per
seed, the run with the head minus the run without it (signed so + = better; RMSE gains are reductions), then
`bench.quality.mtl_archs.verdict` (**helps** / **hurts** when the mean paired gain exceeds its standard deviation,
else neutral) and the sign test of `bench.quality.synthetic.stats`.

- demo: `configs/demo.yaml`, aux `true_click` = regression on `true_click_prob` (the generator's noiseless click
  probability: an upper bound on how informative an auxiliary label can be).
- MovieLens: `bench/quality/specs/movielens.yaml` serving watch and like (and the ranking head), aux `rating`
  (1-5, observed on positives) no longer served.
"""]
    for name, (ds, recs) in results.items():
        parts.append(f"### {ds.name} ({ds.rows:,} rows)\n\n{table(ds, recs, saved['aux'][name])}\n")
    parts.append(f"### Reading\n\n{reading(results, saved['aux'])}\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    ap = quality_args(__doc__, "tiny data, 1 epoch, 2 seeds; writes to a temp dir",
                      f"re-render from {RESULTS.name}")
    ap.add_argument("--seeds", type=int, default=5, help="seeds per (dataset, variant)")
    ap.add_argument("--demo-rows", type=int, default=30_000, help="rows of generated demo data")
    ap.add_argument("--ml-users", type=int, default=300, help="MovieLens users kept (1..N)")
    ap.add_argument("--epochs", type=int, default=6, help="train.epochs (early stopping may end sooner)")
    ns = ap.parse_args(argv)
    saved = saved_or_run(ns, RESULTS, command_line("bench.quality.aux_tasks", argv), run)
    Output.for_run(ns.smoke, ns.doc).section(SECTION, render(saved))


if __name__ == "__main__":
    main()
