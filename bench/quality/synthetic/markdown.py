"""The doc section: the experiment's tables and figures."""

from __future__ import annotations

import numpy as np

from bench.quality.common import Output, fmt_ms, md_table
from bench.quality.synthetic.plots import plot_curves, plot_histograms
from bench.quality.synthetic.stats import final_losses
from bench.quality.synthetic.verdict import verdict


def render(res: dict, out: Output) -> str:
    """The whole section: the experiment's setup, tables, figures and verdict."""
    title = "## Quality 1. Ma et al. (KDD 2018) synthetic task-correlation experiment"
    return f"{title}\n\n{render_main(res, plot_curves(res, out), plot_histograms(res, out))}"


def summary_rows(res: dict) -> list[list[str]]:
    cfg = res["config"]
    rows = []
    for name in cfg["models"]:
        row = [name, str(res["params"][name])]
        for p in cfg["correlations"]:
            v = final_losses(res, name, str(p))
            row += [fmt_ms(v), f"{np.median(v):.4f} [{np.percentile(v, 10):.4f}, {np.percentile(v, 90):.4f}]"]
        rows.append(row)
    return rows


def paired_table(res: dict) -> str:
    """MMoE against each baseline on the same draws: win rate and median loss ratio, per p."""
    cfg = res["config"]
    rows = []
    for other in [n for n in cfg["models"] if n != "mmoe"]:
        row = [f"mmoe vs {other}"]
        for p in cfg["correlations"]:
            a, b = final_losses(res, "mmoe", str(p)), final_losses(res, other, str(p))
            row.append(f"{100 * np.mean(a < b):.0f} % / {np.median(b / a):.2f}×")
        rows.append(row)
    header = ["paired by run", *[f"p={p}: MMoE wins / median loss ratio other÷MMoE" for p in cfg["correlations"]]]
    return md_table(header, rows)


def runtime_line(res: dict) -> str:
    cfg = res["config"]
    per_model = ", ".join(f"{n} {s:.0f} s" for n, s in res["seconds"].items())
    return (f"Runtime: {res['total_seconds'] / 60:.1f} min wall for "
            f"{cfg['runs'] * len(cfg['correlations']) * len(cfg['models'])} trainings "
            f"({res['workers']} worker processes, 1 torch thread each); training time summed over runs: {per_model}.")


def render_main(res: dict, curves_png: str, hist_png: str) -> str:
    cfg = res["config"]
    header = ["model", "params"]
    for p in cfg["correlations"]:
        header += [f"p={p} mean ± std", f"p={p} median [p10, p90]"]
    return f"""{res['provenance']}

**Setup.** Their generator with d = {cfg['d']}, c = {cfg['c']}, m = {cfg['m']} sinusoids,
ε ~ N(0, {cfg['noise_var']}) read as *variance* {cfg['noise_var']} (std {np.sqrt(cfg['noise_var']):.2f}),
so the best reachable test MSE is {cfg['noise_var']}; the label variance (the MSE of predicting the mean) is
{res['label_var']:.2f}. Each run draws new u1, u2, α, β, {cfg['n_train']:,} training and {cfg['n_test']:,} test
samples and a new initialization; within a run every model sees the same data, and every p reuses the run's draw,
initialization and batch order (only p differs, so task 1's data is identical at every p and the effect of p is
measured run by run). {cfg['runs']} runs per (model, p), p ∈ {{{', '.join(str(p) for p in cfg['correlations'])}}}.
Models are `training/modeling/model.py` on dense-only input (`cardinalities=[]`): MMoE and OMoE with {cfg['experts']}
experts of {cfg['expert_units']} ReLU units and towers of {cfg['tower_units']} units; shared-bottom with one layer of
{res['shared_bottom_units']} units, the width whose parameter count is closest to the MMoE's; `mmoe_ed0.1` is our
MMoE with its default expert dropout 0.1 (the paper has none). Training: Adam lr {cfg['lr']}, batch
{cfg['batch_size']}, {cfg['steps']} steps (≈ {cfg['steps'] * cfg['batch_size'] // cfg['n_train']} epochs), loss = sum of the two task MSEs;
test MSE (mean of the two tasks) every {cfg['eval_every']} steps, train MSE on the whole training set at the end.
The paper does not print c, m, sample counts or its step budget, and grid-searched the learning rate; ours are
fixed as above. The paper ran 200 runs per setting.
{runtime_line(res)}

**Final test MSE** (mean of the two tasks, after {cfg['steps']} steps):

{md_table(header, summary_rows(res))}

![test loss curves]({curves_png})

![final loss histograms]({hist_png})

**Paired comparison** (same data and seed; a ratio > 1 means the other model's loss is higher):

{paired_table(res)}

**Do we reproduce the paper's finding?**

{verdict(res)}

Raw curves: `bench/quality/results/synthetic.json`.
"""
