"""What `ranker compare` writes: the help/hurt table (stdout and compare.md), compare.json, the heatmap."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.compare.matrix import Matrix, absolute
from training.compare.runs import Outcome, Run
from training.compare.stats import HELPS, HURTS
from training.compare.variants import Variant

MD, JSON, PNG = "compare.md", "compare.json", "compare.png"
RULE = ("gain = variant minus the task's single-task model, paired by seed, positive = better (AUC up, RMSE "
        "down); **helps** / **hurts** when the mean gain exceeds its std over seeds, else within noise")


NOTE = ("Each is the spec with only that task (same features, model config, training and split); a ranking "
        "task learns a gain over the other tasks' labels, so it has no single-task model and is trained only in "
        "the spec's own model.")


@dataclass
class Report:
    """Everything one comparison wrote: what was asked, the models, the matrix and the runs."""

    spec_name: str
    spec_path: str
    split: str
    seeds: list[int]
    jobs: int
    budget: float | None
    variants: list[Variant]
    matrix: Matrix
    outcome: Outcome


def md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def matrix_table(m: Matrix) -> str:
    rows = []
    for row in m.rows:
        cells = [m.cells.get((row.task, c)) for c in m.columns]
        rows.append([row.label(), *["—" if v is None else _bold(v.text()) for v in cells]])
    return md_table(["task metric (gain over its single-task model)", *m.columns], rows)


def _bold(text: str) -> str:
    word = text.split(" (")[0]
    return f"**{word}**{text[len(word):]}" if word in (HELPS, HURTS) else text


def metrics_table(r: Report) -> str:
    """Mean ± seed std of each variant's metric per task (n runs)."""
    header = ["variant", *[row.label() for row in r.matrix.rows], "runs", "s / run"]
    rows = []
    for v in r.variants:
        recs = [x for x in r.outcome.records if x["variant"] == v.name]
        cells = []
        for row in r.matrix.rows:
            m, s, n = absolute(r.outcome.records, v.name, row.task)
            cells.append(f"{m:.4f} ± {s:.4f}" if n else "—")
        seconds = f"{np.mean([x['seconds'] for x in recs]):.1f}" if recs else "—"
        rows.append([v.name, *cells, str(len(recs)), seconds])
    return md_table(header, rows)


def skipped_text(r: Report) -> str:
    if not r.outcome.skipped:
        return "All planned runs ran."
    return (f"**Skipped ({len(r.outcome.skipped)} of {len(r.outcome.skipped) + len(r.outcome.records)} runs)**: the "
            f"budget of {r.budget:g} s allowed no further start after {r.outcome.seconds:.0f} s: "
            + "; ".join(_runs_text(r.outcome.skipped)) + ".")


def _singles(r: Report) -> str:
    return ", ".join(row.task for row in r.matrix.rows)


def _runs_text(runs: list[Run]) -> list[str]:
    seeds: dict[str, list[int]] = {}
    for run in runs:
        seeds.setdefault(run.variant.name, []).append(run.seed)
    return [f"{name} seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))}" for name, s in seeds.items()]


def markdown(r: Report) -> str:
    budget = f", budget {r.budget:g} s" if r.budget is not None else ""
    return f"""# Does multi-task help? {r.spec_name}

`ranker compare {r.spec_path}`: {r.split} split; seeds {', '.join(map(str, r.seeds))}; {r.jobs} job(s){budget};
{len(r.outcome.records)} runs in {r.outcome.seconds:.0f} s.

## Help/hurt matrix

{RULE}. Single-task models: {_singles(r)}. {NOTE}

{matrix_table(r.matrix)}

![help/hurt heatmap]({PNG})

## Metrics per variant ({r.split} split, mean ± std over seeds)

{metrics_table(r)}

## Runs

{skipped_text(r)}
"""


def to_json(r: Report) -> dict:
    m = r.matrix
    cells = [{"task": t, "metric": next(x.metric for x in m.rows if x.task == t), "variant": c, "verdict": v.word,
              "mean_gain": _num(v.mean), "std": _num(v.std), "pairs": v.n} for (t, c), v in m.cells.items()]
    return {"spec": r.spec_path, "name": r.spec_name, "split": r.split, "seeds": r.seeds, "jobs": r.jobs,
            "budget_seconds": r.budget, "wall_seconds": r.outcome.seconds,
            "rows": [{"task": x.task, "metric": x.metric, "lower_is_better": x.lower_is_better} for x in m.rows],
            "variants": [{"name": v.name, "kind": v.kind, "tasks": list(v.tasks) if v.tasks else None}
                         for v in r.variants],
            "matrix": cells, "records": r.outcome.records,
            "skipped": [{"variant": run.variant.name, "seed": run.seed} for run in r.outcome.skipped]}


def _num(x: float) -> float | None:
    return None if np.isnan(x) else x


def heatmap(m: Matrix, path: Path) -> None:
    """Cells coloured by the mean gain in units of its seed std (the verdict's scale, clipped at 3), green =
    the variant helps; pale within noise. Each cell reads gain ± seed std and the verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = np.full((len(m.rows), len(m.columns)), np.nan)
    for i, row in enumerate(m.rows):
        for j, c in enumerate(m.columns):
            if (v := m.cells.get((row.task, c))) is not None and v.n:
                shown[i, j] = np.sign(v.mean) * 3 if v.std == 0 else np.clip(v.mean / v.std, -3, 3)
    fig, ax = plt.subplots(figsize=(max(5.0, 2.2 + 1.9 * len(m.columns)), 1.0 + 0.8 * len(m.rows)))
    ax.imshow(np.ma.masked_invalid(shown), cmap="RdYlGn", vmin=-3, vmax=3, aspect="auto")
    for i, row in enumerate(m.rows):
        for j, c in enumerate(m.columns):
            v = m.cells.get((row.task, c))
            text = "—" if v is None else "n/a" if v.n == 0 else f"{v.mean:+.4f}\n± {v.std:.4f}\n{v.word}"
            dark = not np.isnan(shown[i, j]) and abs(shown[i, j]) > 2
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(m.columns)), [c.replace(" (", "\n(") for c in m.columns], fontsize=8)
    ax.set_yticks(range(len(m.rows)), [row.label() for row in m.rows], fontsize=8)
    ax.set_title("gain over single-task, paired by seed\n(+ = better; colour: gain / seed std)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(r: Report, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / MD).write_text(markdown(r))
    (out / JSON).write_text(json.dumps(to_json(r), indent=2, allow_nan=False, default=_num))
    heatmap(r.matrix, out / PNG)
    return [out / MD, out / JSON, out / PNG]
