"""Quality 7: our MMoE against gradient-boosted trees and the peer libraries, and what closes the gap.

On every dataset the quality benchmarks train through the trainer (the demo log, MovieLens-100k), on UCI
Adult (census income, two binary tasks; bench/quality/census_data.py) and on Ma et al.'s synthetic generator as
a table (two regression tasks; bench/quality/synthetic_table.py), each over seeds:

  our MMoE                   the dataset's spec as committed (the spec defaults for what it leaves out)
  our MMoE + <candidate>     one change each: numeric embeddings (piecewise-linear over quantile bins for every
                             numeric feature, or periodic), a warmup + cosine learning-rate schedule, DCN-v2 cross
                             layers, a shorter weight average; and the default's ablations (no_ema, no_ple_auto)
  DeepCTR-Torch MMOE         bench/quality/deepctr_mmoe.py
  torch-rechub MMOE          bench/quality/rechub_mmoe.py
  GBDT                       the baseline every report shows (training/evaluation/baseline.py)

All on the same encoded arrays and split; test metrics, mean ± std over seeds. A run replaces the saved runs
of the models it trains and keeps the others; with --reuse it trains only the models whose saved runs do not
cover the seeds asked for (the runs are seeded: a model trained again on unchanged code gives the same numbers).

    .venv/bin/python -m bench.quality.baselines                      # full: 3 seeds
    .venv/bin/python -m bench.quality.baselines --datasets census    # one dataset (merged into the saved runs)
    .venv/bin/python -m bench.quality.baselines --datasets movielens --candidates ple cross   # fewer changes
    .venv/bin/python -m bench.quality.baselines --datasets census --candidates no_ema --reuse  # only what is new
    .venv/bin/python -m bench.quality.baselines --smoke              # tiny data, 1 epoch; temp dir
    .venv/bin/python -m bench.quality.baselines --replot
"""

from __future__ import annotations

import argparse
import json
import time

from bench.quality import datasets as DS
from bench.quality.baselines_render import render
from bench.quality.common import (
    REPO,
    RESULTS_DIR,
    Output,
    command_line,
    provenance,
    quality_args,
    save_results,
)
from bench.quality.runner import Job, run_jobs

SECTION = "quality-baselines"
RESULTS = RESULTS_DIR / "baselines.json"
OURS = "our MMoE"
# label -> (runner kind, spec overrides); the candidates change one thing each.
CANDIDATES = {
    "ple": {"model.numeric_embedding": "ple"},
    "periodic": {"model.numeric_embedding": "periodic"},
    "warmup_cosine": {"train.lr_schedule": "warmup_cosine"},
    "cross": {"model.cross_layers": 2},
    "ema_short": {"train.ema_epochs": 0.5},
    "no_ema": {"train.ema_epochs": None},
    "no_ple_auto": {"model.numeric_embedding": "none"},
}
MODELS = {
    OURS: ("ours", {}),
    **{f"{OURS} + {name}": ("ours", o) for name, o in CANDIDATES.items()},
    "DeepCTR-Torch MMOE": ("deepctr", {}),
    "torch-rechub MMOE": ("rechub", {}),
    "GBDT": ("gbdt", {}),
}
DATASETS = {"demo": lambda smoke: DS.demo(5_000 if smoke else 100_000), "movielens": DS.movielens,
            "census": DS.census, "synthetic": DS.synthetic}


def models_for(candidates: list[str]) -> dict:
    """MODELS without the candidate changes not asked for."""
    dropped = {f"{OURS} + {name}" for name in CANDIDATES if name not in candidates}
    return {label: m for label, m in MODELS.items() if label not in dropped}


def jobs_for(ds: DS.Dataset, seeds: list[int], smoke: bool, models: dict = MODELS) -> list[Job]:
    extra = ds.smoke_overrides if smoke else {}
    return [Job(ds.spec_path, ds.data_path, {**o, **extra, "train.seed": seed}, label, kind, ds.group_column)
            for seed in seeds for label, (kind, o) in models.items()]


def saved_seeds(saved: dict, dataset: str) -> dict[str, set[int]]:
    """label -> the seeds of its saved runs on dataset."""
    out: dict[str, set[int]] = {}
    for r in saved["records"]:
        if r["dataset"] == dataset:
            out.setdefault(r["label"], set()).add(r["overrides"]["train.seed"])
    return out


def to_train(saved: dict, dataset: str, models: dict, seeds: list[int], reuse: bool) -> dict:
    """models, without (reuse) those whose saved runs on dataset already cover seeds."""
    have = saved_seeds(saved, dataset)
    return {label: m for label, m in models.items() if not (reuse and set(seeds) <= have.get(label, set()))}


def merge(saved: dict, dataset: str, records: list[dict], this: dict) -> None:
    """Into saved (in place): records replace the saved ones of the models they ran, the others stay. `this`
    (provenance, seeds, wall time, workers, jobs, models) is the dataset's run, or a later partial run when
    saved runs of other models stay."""
    ran = set(this["models"])
    kept = [r for r in saved["records"] if r["dataset"] != dataset or r["label"] not in ran]
    stays = {r["label"] for r in kept if r["dataset"] == dataset}
    saved["records"] = kept + records
    if dataset in saved["runs"] and stays:
        saved["runs"][dataset].setdefault("later", []).append(this)
    else:
        saved["runs"][dataset] = this


def run(ns: argparse.Namespace, command: str) -> dict:
    """Train every (dataset, model, seed) asked for (with --reuse, not those already saved); the records of the
    models trained replace theirs in the saved runs (unless --smoke), the other models' records stay."""
    saved = {"datasets": {}, "records": [], "runs": {}}
    if RESULTS.exists() and not ns.smoke:
        saved = json.loads(RESULTS.read_text())
    seeds = list(range(1 if ns.smoke else ns.seeds))
    for name in ns.datasets:
        made_by = provenance(command)
        models = to_train(saved, name, models_for(ns.candidates), seeds, ns.reuse)
        ds = DATASETS[name](ns.smoke)
        t0 = time.perf_counter()
        jobs = jobs_for(ds, seeds, ns.smoke, models)
        records = [{**r, "dataset": name} for r in run_jobs(jobs, ns.workers)]
        saved["datasets"][name] = DS.describe(ds)
        merge(saved, name, records, {"provenance": made_by, "seeds": seeds, "wall_seconds": round(time.perf_counter() - t0),
                                     "workers": ns.workers, "jobs": len(jobs), "models": list(models)})
        if not ns.smoke:
            save_results(RESULTS, saved)
    return saved


def main(argv: list[str] | None = None) -> None:
    ap = quality_args(__doc__, "tiny data, 1 epoch, 1 seed; writes to a temp dir",
                      f"re-render from {RESULTS.relative_to(REPO)}")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per (dataset, model)")
    ap.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    ap.add_argument("--candidates", nargs="*", choices=list(CANDIDATES), default=list(CANDIDATES),
                    help="the candidate changes to train (the baselines and peers always run)")
    ap.add_argument("--reuse", action="store_true",
                    help="train only the models whose saved runs on the dataset miss some of the seeds")
    ns = ap.parse_args(argv)
    saved = json.loads(RESULTS.read_text()) if ns.replot else run(ns, command_line("bench.quality.baselines", argv))
    out = Output.for_run(ns.smoke, ns.doc)
    out.section(SECTION, render(saved, OURS, list(CANDIDATES), replot=ns.replot))


if __name__ == "__main__":
    main()
