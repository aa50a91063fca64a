"""Quality 7: our MMoE against gradient-boosted trees and the peer libraries, and what closes the gap.

On every dataset the quality benchmarks train through the trainer (the demo log, MovieLens-100k)
and on UCI Adult (census income, two binary tasks; bench/quality/census_data.py), each over seeds:

  our MMoE                   the dataset's spec as committed (the spec defaults for what it leaves out)
  our MMoE + <candidate>     one change each: numeric embeddings (piecewise-linear over quantile bins,
                             or periodic), a warmup + cosine learning-rate schedule, DCN-v2 cross layers
  DeepCTR-Torch MMOE         bench/quality/deepctr_mmoe.py
  torch-rechub MMOE          bench/quality/rechub_mmoe.py
  GBDT                       the baseline every report shows (training/evaluation/baseline.py)

All on the same encoded arrays and split; test metrics, mean ± std over seeds.

    .venv/bin/python -m bench.quality.baselines                      # full: 3 seeds
    .venv/bin/python -m bench.quality.baselines --datasets census    # one dataset (merged into the saved runs)
    .venv/bin/python -m bench.quality.baselines --datasets movielens --candidates ple cross   # fewer changes
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
}
MODELS = {
    OURS: ("ours", {}),
    **{f"{OURS} + {name}": ("ours", o) for name, o in CANDIDATES.items()},
    "DeepCTR-Torch MMOE": ("deepctr", {}),
    "torch-rechub MMOE": ("rechub", {}),
    "GBDT": ("gbdt", {}),
}
DATASETS = {"demo": lambda smoke: DS.demo(5_000 if smoke else 100_000), "movielens": DS.movielens,
            "census": DS.census}


def models_for(candidates: list[str]) -> dict:
    """MODELS without the candidate changes not asked for."""
    dropped = {f"{OURS} + {name}" for name in CANDIDATES if name not in candidates}
    return {label: m for label, m in MODELS.items() if label not in dropped}


def jobs_for(ds: DS.Dataset, seeds: list[int], smoke: bool, models: dict = MODELS) -> list[Job]:
    extra = ds.smoke_overrides if smoke else {}
    return [Job(ds.spec_path, ds.data_path, {**o, **extra, "train.seed": seed}, label, kind, ds.group_column)
            for seed in seeds for label, (kind, o) in models.items()]


def run(ns: argparse.Namespace, command: str) -> dict:
    """Train every (dataset, model, seed) asked for; merges them into the saved runs (unless --smoke)."""
    saved = {"datasets": {}, "records": [], "runs": {}}
    if RESULTS.exists() and not ns.smoke:
        saved = json.loads(RESULTS.read_text())
    seeds = list(range(1 if ns.smoke else ns.seeds))
    for name in ns.datasets:
        made_by = provenance(command)
        ds = DATASETS[name](ns.smoke)
        t0 = time.perf_counter()
        jobs = jobs_for(ds, seeds, ns.smoke, models_for(ns.candidates))
        records = [{**r, "dataset": name} for r in run_jobs(jobs, ns.workers)]
        saved["records"] = [r for r in saved["records"] if r["dataset"] != name] + records
        saved["datasets"][name] = DS.describe(ds)
        saved["runs"][name] = {"provenance": made_by, "seeds": seeds, "wall_seconds": round(time.perf_counter() - t0),
                               "workers": ns.workers}
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
    ns = ap.parse_args(argv)
    saved = json.loads(RESULTS.read_text()) if ns.replot else run(ns, command_line("bench.quality.baselines", argv))
    out = Output.for_run(ns.smoke, ns.doc)
    out.section(SECTION, render(saved, OURS, list(CANDIDATES), replot=ns.replot))


if __name__ == "__main__":
    main()
