"""Expert dropout (Zhao et al., RecSys 2019) vs gate polarization, on the demo data and MovieLens.

For each dataset, our MMoE (its spec as committed) is trained with model.expert_dropout in
{0, 0.1, 0.3} over 10 seeds; gate statistics come from training.evaluation.metrics.gate_stats on the test
split (eval-mode gates, no dropout).

    .venv/bin/python -m bench.quality.expert_dropout            # full: 2 datasets x 3 values x 10 seeds
    .venv/bin/python -m bench.quality.expert_dropout --smoke    # tiny data, 1 epoch, 2 seeds; temp dir
    .venv/bin/python -m bench.quality.expert_dropout --replot   # the section again from the saved runs
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.quality import datasets as DS
from bench.quality.common import (
    RESULTS_DIR,
    Output,
    ablation_args,
    command_line,
    md_table,
    mean_std,
    saved_or_run,
    use_agg,
)
from bench.quality.records import by_override, gap_and_noise, task_metric, task_names
from training.evaluation.metrics import EFFECTIVE_EXPERTS_FLOOR, POLARIZED_TOP_WEIGHT

SECTION = "quality-expert-dropout"
RESULTS = RESULTS_DIR / "expert_dropout.json"
FIELD = "model.expert_dropout"
RATES = (0.0, 0.1, 0.3)


def gates(rec: dict) -> dict[str, dict]:
    return rec["metrics"]["test"]["gates"]


def summarize(ds: DS.Dataset, recs: list[dict]) -> list[str]:
    """One table row for one dropout rate: polarization, entropy, task metrics, NDCG."""
    per_gate = [g for r in recs for g in gates(r).values()]
    polarized = sum(g["polarized"] for g in per_gate)
    runs_polarized = sum(any(g["polarized"] for g in gates(r).values()) for r in recs)
    row = [f"{recs[0]['overrides'][FIELD]:g}",
           f"{polarized}/{len(per_gate)} ({100 * polarized / len(per_gate):.0f} %)",
           f"{runs_polarized}/{len(recs)}",
           f"{mean_std(g['normalized_entropy'] for g in per_gate)[0]:.3f}",
           f"{mean_std(g['effective_experts'] for g in per_gate)[0]:.2f} (min {min(g['effective_experts'] for g in per_gate):.2f})",
           f"{np.mean([max(g['mean_weight']) for g in per_gate]):.3f}"]
    return [*row, *ds.metric_cells(recs)]


def table(ds: DS.Dataset, recs: list[dict]) -> str:
    header = ["expert dropout", "polarized gates", "runs with ≥ 1 polarized gate", "gate entropy (norm.)",
              "effective experts", "top-expert weight", *ds.metric_header(recs[0])]
    return md_table(header, [summarize(ds, rs) for rs in by_override(recs, FIELD, RATES).values() if rs])


def heatmaps(ds: DS.Dataset, recs: list[dict], out: Output, slug: str) -> str:
    """Row 1: per-task mean gate weight per expert for the first seed; row 2: experts sorted by weight
    within each task, averaged over seeds (expert identities differ between seeds, sorting does not)."""
    import matplotlib.pyplot as plt

    tasks = task_names(recs[0])
    fig, axes = plt.subplots(2, len(RATES), figsize=(3.4 * len(RATES), 1.0 + 2 * (0.5 * len(tasks) + 0.6)), squeeze=False)
    for col, (rate, rs) in enumerate(by_override(recs, FIELD, RATES).items()):
        first = np.array([gates(rs[0])[t]["mean_weight"] for t in tasks])  # (T, E)
        ranked = np.mean([np.sort([gates(r)[t]["mean_weight"] for t in tasks], axis=1)[:, ::-1] for r in rs], axis=0)
        for row, (mat, title) in enumerate(((first, f"seed {rs[0]['overrides']['train.seed']}"),
                                            (ranked, f"sorted, mean of {len(rs)} seeds"))):
            ax = axes[row, col]
            ax.imshow(mat, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            for (i, j), v in np.ndenumerate(mat):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
            ax.set_yticks(range(len(tasks)), tasks if col == 0 else [""] * len(tasks), fontsize=8)
            ax.set_xticks(range(mat.shape[1]), [str(j) if row == 0 else f"#{j + 1}" for j in range(mat.shape[1])],
                          fontsize=8)
            ax.set_title(f"dropout {rate:g}: {title}", fontsize=9)
    fig.suptitle(f"{ds.name}: mean gate weight per task (rows) and expert (columns), test split", fontsize=10)
    return out.figure(fig, f"expert_dropout_gates_{slug}")


def reading(results: dict) -> str:
    """What the tables say, computed: polarization seen at all, and metric changes vs seed noise."""
    gates_all = [g for _, recs in results.values() for r in recs for g in gates(r).values()]
    n_pol = sum(g["polarized"] for g in gates_all)
    lines = [f"- Polarized gates: {n_pol} of {len(gates_all)} (all datasets, rates and seeds). Largest mean weight any "
             f"task put on one expert: {max(max(g['mean_weight']) for g in gates_all):.2f}; fewest effective experts: "
             f"{min(g['effective_experts'] for g in gates_all):.2f} of {len(gates_all[0]['mean_weight'])}."]
    for ds, recs in results.values():
        by_rate = by_override(recs, FIELD, RATES)
        changes = []
        for task in task_names(recs[0]):
            base = mean_std(task_metric(r, task) for r in by_rate[RATES[0]])
            for rate in RATES[1:]:
                gap, noise = gap_and_noise(mean_std(task_metric(r, task) for r in by_rate[rate]), base)
                if abs(gap) > noise:
                    changes.append(f"{task} at {rate:g}: {gap:+.4f} (seed std ≤ {noise:.4f})")
        lines.append(f"- {ds.name}: metric changes vs dropout 0 larger than the seed std: "
                     + ("; ".join(changes) if changes else "none") + ".")
    return "\n".join(lines)


def render(results: dict, pngs: dict, seeds: list[int], made_by: str) -> str:
    parts = [f"""## Quality 3. Expert dropout and gate polarization

{made_by}

Our MMoE as configured in each dataset's spec (`configs/demo.yaml`: 4 experts (128, 64), 4 tasks;
`bench/quality/specs/movielens.yaml`: 4 experts (128, 64), 3 tasks), trained with `model.expert_dropout` ∈
{{{', '.join(f'{r:g}' for r in RATES)}}} (training only: each gate weight is zeroed with that probability and the
rest renormalized) over seeds {seeds[0]}..{seeds[-1]} ({len(seeds)} per value). Gate statistics are
`training.evaluation.metrics.gate_stats` on eval-mode gates of the test split: a task's gate is **polarized** when its
mean weight on its top expert exceeds {POLARIZED_TOP_WEIGHT} or its effective number of experts
(exp of the entropy of its mean weights) is below {EFFECTIVE_EXPERTS_FLOOR}. *Gate entropy* is the mean per-row
entropy divided by log(#experts) (1 = uniform, 0 = one-hot). Task metrics on the test split, mean ± std over seeds.
"""]
    for name, (ds, recs) in results.items():
        parts.append(f"### {ds.name} ({ds.rows:,} rows)\n\n{table(ds, recs)}\n\n![gate heatmaps]({pngs[name]})\n")
    parts.append(f"""### Reading

{reading(results)}

Zhao et al. (RecSys 2019) saw gates polarize with many experts on large production data. With 4 experts on
these two datasets the softmax gates stay close to uniform in every run, with or without expert dropout, so this
benchmark cannot show expert dropout *preventing* polarization; it shows that there was none to prevent here and
that the default rate (0.1) costs nothing measurable in quality. Near-uniform gates also mean the experts are
mixed almost evenly, which is consistent with MMoE and shared-bottom scoring within noise of each other on
MovieLens ("Quality 2").
""")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    ns = ablation_args(__doc__, 10, RESULTS, argv)
    saved = saved_or_run(ns, RESULTS, command_line("bench.quality.expert_dropout", argv), run)
    results = DS.by_dataset(saved)
    out = Output.for_run(ns.smoke, ns.doc)
    use_agg()
    pngs = {name: heatmaps(ds, recs, out, name) for name, (ds, recs) in results.items()}
    out.section(SECTION, render(results, pngs, saved["seeds"], saved["provenance"]))


def run(ns: argparse.Namespace, made_by: str) -> dict:
    """Train every (dataset, rate, seed); returns what is saved (and rendered)."""
    return DS.run_ablation(ns, made_by, FIELD, RATES, lambda name, rate: f"{name} ed={rate:g}")


if __name__ == "__main__":
    main()
