"""Task pacing (`tasks[].lr_scale`): slowing the head that peaks first, does its peak move, and what happens to
every head?

configs/demo.yaml on generated demo data, trained for a fixed number of epochs (early stopping patience as long
as the run, so every head's validation curve is seen to its end) over seeds. First at lr_scale 1 everywhere;
the task whose validation metric peaks first (lowest mean best epoch over those seeds) is then trained at each
of SCALES, everything else equal, and compared with the same seed at 1 (paired).

    .venv/bin/python -m bench.quality.task_pacing            # demo, 5 seeds x 3 rates
    .venv/bin/python -m bench.quality.task_pacing --smoke    # tiny data, 2 epochs, 2 seeds; temp dir
    .venv/bin/python -m bench.quality.task_pacing --replot   # the section again from the saved runs
"""

from __future__ import annotations

import argparse

import numpy as np

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
from bench.quality.mtl_archs import verdict
from bench.quality.records import direction, metric_name, task_metric
from bench.quality.runner import run_jobs
from bench.quality.synthetic.stats import counts
from training.spec import load_spec

SECTION = "quality-task-pacing"
RESULTS = RESULTS_DIR / "task_pacing.json"
SCALES = (1.0, 0.3, 0.1)


def jobs_for(ds: DS.Dataset, tasks: list[dict], task: str | None, scale: float, seeds: list[int],
             epochs: int) -> list:
    scaled = [{**t, "lr_scale": scale} if t["name"] == task else t for t in tasks]
    return [DS.Dataset.job(ds, {"tasks": scaled, "train.seed": seed, "train.epochs": epochs,
                                "train.early_stopping_patience": epochs, "train.threads": 1},
                           f"lr_scale {scale:g}", False) for seed in seeds]


def first_peaking(recs: list[dict]) -> str:
    """The head with the lowest mean best validation epoch (ties: the first in task order)."""
    tasks = list(recs[0]["head_best_epoch"])
    return min(tasks, key=lambda t: np.mean([r["head_best_epoch"][t] or 0 for r in recs]))


def run(ns: argparse.Namespace, made_by: str) -> dict:
    seeds = list(range(2 if ns.smoke else ns.seeds))
    epochs = 2 if ns.smoke else ns.epochs
    ds = DS.demo(3_000 if ns.smoke else ns.demo_rows)
    tasks = [t.model_dump() for t in load_spec(DS.DEMO_SPEC, data_path=ds.data_path).tasks]
    base = run_jobs(jobs_for(ds, tasks, None, 1.0, seeds, epochs), ns.workers)
    task = first_peaking(base)
    records = list(base)
    for scale in SCALES[1:]:
        records += run_jobs(jobs_for(ds, tasks, task, scale, seeds, epochs), ns.workers)
    return {"provenance": made_by, "seeds": seeds, "epochs": epochs, "task": task, "dataset": DS.describe(ds),
            "records": records}


def by_scale(recs: list[dict]) -> dict[float, list[dict]]:
    return {s: [r for r in recs if r["label"] == f"lr_scale {s:g}"] for s in SCALES}


def paired(base: list[dict], other: list[dict], metric: str) -> list[float]:
    """Per seed, the scaled run's test metric minus the unscaled one, signed so + = better."""
    at = {r["overrides"]["train.seed"]: r for r in base}
    return [direction(r, metric) * (task_metric(r, metric) - task_metric(at[r["overrides"]["train.seed"]], metric))
            for r in other]


def tables(saved: dict) -> tuple[str, str]:
    """(best validation epoch per head, test metric per head with the paired change) by lr_scale of the task."""
    groups = by_scale(saved["records"])
    tasks = list(groups[1.0][0]["head_best_epoch"])
    label = [t for t in tasks if "ndcg" not in saved["records"][0]["metrics"]["test"]["tasks"][t]]
    epochs = md_table([f"{saved['task']} lr_scale", *tasks, "best overall (valid loss)"],
                      [[f"{s:g}", *(fmt_ms((r["head_best_epoch"][t] for r in rs), 1) for t in tasks),
                        fmt_ms((r["best_epoch"] for r in rs), 1)] for s, rs in groups.items()])
    first = groups[1.0][0]
    rows = [[f"{s:g}", *(fmt_ms(task_metric(r, t) for r in rs) for t in label),
             fmt_ms(r["metrics"]["test"]["ndcg@10"] for r in rs)] for s, rs in groups.items()]
    for s in SCALES[1:]:
        gains = {t: paired(groups[1.0], groups[s], t) for t in label}
        rows.append([f"{s:g} vs 1 (paired)", *(f"{verdict(g)}; {counts(np.asarray(g))}" for g in gains.values()),
                     ""])
    metrics = md_table([f"{saved['task']} lr_scale", *(f"{t} {metric_name(first, t)}" for t in label),
                        "NDCG@10 per request"], rows)
    return epochs, metrics


def render(saved: dict) -> str:
    epochs, metrics = tables(saved)
    seeds, task = saved["seeds"], saved["task"]
    groups = by_scale(saved["records"])
    moved = {s: np.mean([r["head_best_epoch"][task] for r in groups[s]]) for s in SCALES}
    return f"""## Quality 9. Task pacing: lr_scale on the head that peaks first

{saved["provenance"]}

`configs/demo.yaml` on {saved["dataset"]["rows"]:,} generated demo rows, {saved["epochs"]} epochs with early-stopping
patience as long as the run (every head's validation curve to its end; the model kept is the best epoch by
validation loss), seeds {seeds[0]}..{seeds[-1]}. With every `lr_scale` at 1, `{task}` peaks first (lowest mean best
validation epoch); it is then trained at `lr_scale` ∈ {{{", ".join(f"{s:g}" for s in SCALES[1:])}}}: its tower,
head and gate at `train.lr * lr_scale`, everything else unchanged. Paired by seed against the run at 1:
`bench.quality.mtl_archs.verdict` (**helps** / **hurts** when the mean paired change exceeds its std) and the sign
test of `bench.quality.synthetic.stats`.

Best validation epoch per head (mean ± std over seeds):

{epochs}

Test metrics of the model kept:

{metrics}

### Reading

- `{task}`'s mean best epoch: {", ".join(f"{moved[s]:.1f} at {s:g}" for s in SCALES)}.
"""


def main(argv: list[str] | None = None) -> None:
    ap = quality_args(__doc__, "tiny data, 2 epochs, 2 seeds; writes to a temp dir", f"re-render from {RESULTS.name}")
    ap.add_argument("--seeds", type=int, default=5, help="seeds per rate")
    ap.add_argument("--demo-rows", type=int, default=30_000, help="rows of generated demo data")
    ap.add_argument("--epochs", type=int, default=10, help="train.epochs (and the early-stopping patience)")
    ns = ap.parse_args(argv)
    saved = saved_or_run(ns, RESULTS, command_line("bench.quality.task_pacing", argv), run)
    Output.for_run(ns.smoke, ns.doc).section(SECTION, render(saved))


if __name__ == "__main__":
    main()
