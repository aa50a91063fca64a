"""The doc section: the main experiment's tables and figures, then the sensitivity check's."""

from __future__ import annotations

import numpy as np

from bench.quality.common import Output, fmt_ms, md_table
from bench.quality.synthetic.config import PAPER_MODELS
from bench.quality.synthetic.plots import plot_curves, plot_histograms
from bench.quality.synthetic.stats import (
    cell_groups,
    cell_pattern,
    counts,
    ends,
    final_losses,
    is_paper_pattern,
    paired_change,
    pooled,
)
from bench.quality.synthetic.verdict import verdict


def render(res: dict | None, sens: dict | None, out: Output) -> str:
    """The whole section: the main experiment (if run) and the sensitivity check (if run)."""
    parts = ["## Quality 1. Ma et al. (KDD 2018) synthetic task-correlation experiment"]
    if res is not None:
        parts.append(render_main(res, sens, plot_curves(res, out), plot_histograms(res, out)))
    if sens is not None:
        parts.append(render_sensitivity(sens))
    return "\n\n".join(parts)


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


def render_main(res: dict, sens: dict | None, curves_png: str, hist_png: str) -> str:
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

{verdict(res, sens)}

Raw curves: `bench/quality/results/synthetic.json`.
"""


def sensitivity_rows(sens: dict) -> list[list[str]]:
    """One row per (cell, model): median final test MSE per p, paired changes of test and train MSE."""
    rows = []
    for res in sens["cells"]:
        cfg = res["config"]
        hi, lo, names = ends(res)
        for name in names:
            test = paired_change(res, name, hi, lo)
            train = paired_change(res, name, hi, lo, key="train")
            vs = "" if name == "mmoe" else counts(test - paired_change(res, "mmoe", hi, lo))
            rows.append([f"{cfg['c']:g}", f"{cfg['n_train']:,}", f"{res['label_var']:.2f}", name,
                         f"{np.median(final_losses(res, name, hi, key='train')):.4f}",
                         *[f"{np.median(final_losses(res, name, str(p))):.4f}" for p in cfg["correlations"]],
                         f"{np.median(test):+.4f} ({counts(test)})", f"{np.median(train):+.4f} ({counts(train)})", vs])
    return rows


def _pattern_text(res: dict, key: str) -> str:
    rise, least, most = cell_pattern(res, key)
    return (f"{'every model clearly rises' if rise else 'not every model clearly rises'}, smallest median Δ "
            f"{least}, largest {most}" + (" — **the paper's pattern**" if is_paper_pattern(res, key) else ""))


def pooled_rows(sens: dict) -> list[list[str]]:
    rows = []
    for label, cells in cell_groups(sens):
        for key, loss in (("curves", "test"), ("train", "train")):
            d = pooled(cells, key)
            rows.append([label, loss, *[counts(d[n]) for n in PAPER_MODELS],
                         *[counts(d[n] - d["mmoe"]) for n in PAPER_MODELS if n != "mmoe"]])
    return rows


def render_sensitivity(sens: dict) -> str:
    cfg = sens["cells"][0]["config"]
    ps = [str(p) for p in cfg["correlations"]]
    hi, lo = ps[0], ps[-1]
    header = ["c", "train samples", "var(y)", "model", f"median train MSE p={hi}", *[f"median test MSE p={p}" for p in ps],
              f"test Δ p={hi}→{lo}: median (runs rising, sign-test p)", "train Δ: median (runs rising, p)",
              "test Δ > MMoE's Δ (runs, p)"]
    lines = [f"- c = {r['config']['c']:g}, {r['config']['n_train']:,} training samples: test loss: "
             f"{_pattern_text(r, 'curves')}; train loss: {_pattern_text(r, 'train')}." for r in sens["cells"]]
    trainings = sum(r["config"]["runs"] * len(ps) * len(r["config"]["models"]) for r in sens["cells"])
    return f"""### Sensitivity check: harder functions, less and more data

{sens['provenance']}

Same generator, models and training as above (m = {cfg['m']}, {cfg['n_test']:,} test samples, Adam lr {cfg['lr']},
batch {cfg['batch_size']}, {cfg['steps']} steps) except for the scale c and the training-set size in each cell, the
paper's three models only, and {cfg['runs']} runs per (cell, model, p), paired across p as above. Larger c puts more
sine periods over the range of wᵀx (a harder function for the same capacity); fewer samples widen the gap
between train and test loss, more samples close it. var(y) is the label variance (the MSE of predicting the mean).
Δ is the per-run change of the final MSE (mean of the two tasks) from p = {hi} to p = {lo}; "clearly rises" means
the median Δ is positive and the exact sign test over runs gives p < 0.05 (with 10 runs: at least 9 of 10 rise).
The last column counts the runs where a model's test Δ exceeds MMoE's on the same draw.
Runtime: {sens['total_seconds'] / 60:.1f} min wall for {trainings} trainings ({sens['cells'][0]['workers']} worker processes).

{md_table(header, sensitivity_rows(sens))}

Per cell, whether every model's Δ clearly rises and which model's median Δ is smallest / largest:

{chr(10).join(lines)}

Pooled over cells (one sign test over all their runs): runs where Δ > 0, and runs where a model's Δ exceeds
MMoE's on the same draw:

{md_table(["pooled over", "loss", *[f"{n}: Δ > 0" for n in PAPER_MODELS],
           *[f"{n}: Δ > MMoE's Δ" for n in PAPER_MODELS if n != "mmoe"]], pooled_rows(sens))}

Raw final losses: `bench/quality/results/synthetic_sensitivity.json`.
"""
