"""Loss balancing: fixed weights vs uncertainty weighting vs GradNorm, on the demo data and MovieLens.

Quality: each dataset's spec as committed (our MMoE) with train.loss_balancing in {fixed,
uncertainty, gradnorm}, 5 seeds each, run in a worker pool. Cost: a separate timing pass in this one
process, one thread, the three balancers interleaved (fixed, uncertainty, gradnorm, fixed, ...) for
2 rounds of 2 epochs each; the fastest epoch per balancer is kept, so background load on a shared
machine inflates the ratios as little as possible.

    .venv/bin/python -m bench.quality.loss_balancing            # full
    .venv/bin/python -m bench.quality.loss_balancing --smoke    # tiny data, 1 epoch; temp dir
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.quality import datasets as DS
from bench.quality.common import REPO, Output, command_line, md_table, mean_std, provenance
from bench.quality.runner import run_jobs, save

SECTION = "quality-loss-balancing"
RESULTS = REPO / "bench" / "quality" / "results" / "loss_balancing.json"
BALANCERS = ("fixed", "uncertainty", "gradnorm")


def timing(ds: DS.Dataset, rounds: int, epochs: int, smoke: bool) -> dict[str, float]:
    """Fastest training epoch (seconds) per balancer, interleaved in one process."""
    jobs = [ds.job({"train.loss_balancing": b, "train.seed": 0, "train.epochs": epochs,
                    "train.early_stopping_patience": epochs}, f"{ds.name} timing {b}", smoke)
            for _ in range(rounds) for b in BALANCERS]
    fastest: dict[str, float] = {}
    for rec in run_jobs(jobs, workers=1):
        b = rec["overrides"]["train.loss_balancing"]
        fastest[b] = min(fastest.get(b, float("inf")), *rec["epoch_seconds"])
    return fastest


def table(ds: DS.Dataset, recs: list[dict], seconds: dict[str, float]) -> str:
    tasks = DS.task_names(recs[0])
    header = ["loss balancing", *[f"{t} {DS.metric_name(recs[0], t)}" for t in tasks], ds.ndcg_label,
              "epochs (best)", "task weights after training (mean over seeds)", "s / epoch", "× fixed"]
    rows = []
    for b in BALANCERS:
        rs = [r for r in recs if r["overrides"]["train.loss_balancing"] == b]
        if not rs:
            continue
        cells = ["{:.4f} ± {:.4f}".format(*mean_std(DS.task_metric(r, t) for r in rs)) for t in tasks]
        cells.append("{:.4f} ± {:.4f}".format(*mean_std(ds.ndcg(r) for r in rs)))
        weights = {t: np.mean([r["task_weights"][t] for r in rs]) for t in tasks}
        rows.append([b, *cells, f"{np.mean([r['epochs'] for r in rs]):.1f} ({np.mean([r['best_epoch'] for r in rs]):.1f})",
                     ", ".join(f"{t} {w:.2f}" for t, w in weights.items()),
                     f"{seconds[b]:.2f}", f"{seconds[b] / seconds['fixed']:.2f}"])
    return md_table(header, rows)


def render(results: dict, seeds: list[int], command: str) -> str:
    parts = [f"""## 4. Loss balancing: fixed vs uncertainty vs GradNorm

{provenance(command)}

Our MMoE with each dataset's spec as committed, only `train.loss_balancing` changed, seeds {seeds[0]}..{seeds[-1]}
({len(seeds)} per setting), test metrics mean ± std over seeds. **fixed**: sum of the per-task masked mean losses,
weight 1 each. **uncertainty**: Kendall et al. 2018, learned log-variances. **gradnorm**: Chen et al. 2018,
α = 1.5 (spec default), gradient norms on every expert's last layer; a task without labels in a batch is left out
of that batch's GradNorm update (`training/losses.py`). Early stopping always uses the same fixed-weight
validation loss, so the three are selected by the same criterion. *s / epoch*: fastest training epoch per
balancer in a separate pass in one process and one thread, balancers interleaved (2 rounds × 2 epochs), so the
ratios compare like with like on the same machine state.
"""]
    for ds, recs, seconds in results.values():
        parts.append(f"### {ds.name} ({ds.rows:,} rows)\n\n{table(ds, recs, seconds)}\n")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny data, 1 epoch, 2 seeds; writes to a temp dir")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--demo-rows", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--doc", help="markdown file to write the section to")
    ns = ap.parse_args(argv)
    seeds = list(range(2 if ns.smoke else ns.seeds))
    sets = {"demo": DS.demo(5_000 if ns.smoke else ns.demo_rows), "movielens": DS.movielens(ns.smoke)}
    results = {}
    for name, ds in sets.items():
        jobs = [ds.job({"train.loss_balancing": b, "train.seed": seed}, f"{name} {b}", ns.smoke)
                for seed in seeds for b in BALANCERS]
        recs = run_jobs(jobs, ns.workers)
        results[name] = (ds, recs, timing(ds, rounds=1 if ns.smoke else 2, epochs=2, smoke=ns.smoke))
    if not ns.smoke:
        save([{**r, "dataset": n} for n, (_, recs, _) in results.items() for r in recs]
             + [{"dataset": n, "fastest_epoch_seconds": s} for n, (_, _, s) in results.items()], RESULTS)
    out = Output.for_run(ns.smoke, ns.doc)
    out.section(SECTION, render(results, seeds, command_line("bench.quality.loss_balancing", argv)))


if __name__ == "__main__":
    main()
