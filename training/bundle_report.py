"""A human-readable account of one training run, written into the bundle.

report.md            data window, rows per split, metrics per task, NDCG, gate statistics, timing
training_curves.png  train / valid loss per epoch, one panel per task
gate_heatmap.png     mean gate weight per task and expert (MMoE / OMoE only)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from training.spec import RankerSpec  # noqa: E402
from training.train import Trained  # noqa: E402

REPORT_FILE = "report.md"
CURVES_FILE = "training_curves.png"
HEATMAP_FILE = "gate_heatmap.png"


def training_summary(trained: Trained) -> dict:
    """Epochs, best epoch, wall time and throughput of the fit."""
    h = trained.history
    epoch_seconds = sum(e["seconds"] for e in h)
    rows = len(trained.prepared.train)
    best = min(h, key=lambda e: e["valid_loss"])["epoch"] if h else None
    return {"epochs": len(h), "best_epoch": best, "train_seconds": round(trained.train_seconds, 2),
            "samples_per_second": round(rows * len(h) / epoch_seconds, 1) if epoch_seconds else None}


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def metrics_rows(metrics: dict, spec_tasks: list) -> list[tuple[str, str, str, str, str]]:
    """(task, metric, valid, test, observed test labels) for each task metric."""
    rows = []
    for t in spec_tasks:
        for key in ("auc", "rmse", "rmse_log1p"):
            if key in metrics["test"]["tasks"][t.name]:
                valid, test = metrics["valid"]["tasks"][t.name], metrics["test"]["tasks"][t.name]
                rows.append((t.name, key, _fmt(valid.get(key)), _fmt(test.get(key)), f"{test['observed']:,}"))
    return rows


def metrics_table(metrics: dict, spec: RankerSpec) -> str:
    """One split's metrics (as `prediction_metrics` returns them) as a fixed-width table."""
    k = spec.eval.ndcg_k
    lines = [f"{'task':<14}{'metric':<12}{'value':>10}{'observed':>11}"]
    for t in spec.tasks:
        m = metrics["tasks"][t.name]
        lines += [f"{t.name:<14}{key:<12}{_fmt(m[key]):>10}{m['observed']:>11,}"
                  for key in ("auc", "rmse", "rmse_log1p") if key in m]
    lines.append(f"{'(ranking)':<14}{f'ndcg@{k}':<12}{_fmt(metrics.get(f'ndcg@{k}')):>10}{metrics['rows']:>11,}")
    return "\n".join(lines)


def summary_table(trained: Trained) -> str:
    """A small fixed-width table of valid/test metrics, for the terminal."""
    k = trained.spec.eval.ndcg_k
    m = trained.metrics
    lines = [f"{'task':<14}{'metric':<12}{'valid':>10}{'test':>10}{'observed':>11}"]
    lines += [f"{a:<14}{b:<12}{c:>10}{d:>10}{e:>11}" for a, b, c, d, e in metrics_rows(m, trained.spec.tasks)]
    lines.append(f"{'(ranking)':<14}{f'ndcg@{k}':<12}{_fmt(m['valid'][f'ndcg@{k}']):>10}"
                 f"{_fmt(m['test'][f'ndcg@{k}']):>10}")
    s = training_summary(trained)
    lines.append(f"{s['epochs']} epochs (best {s['best_epoch']}), {s['train_seconds']:.1f} s, "
                 f"{s['samples_per_second']:,.0f} samples/s")
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def _gate_section(gates: dict[str, dict]) -> list[str]:
    n_experts = len(next(iter(gates.values()))["mean_weight"])
    header = ["task", *(f"e{i}" for i in range(n_experts)), "entropy (norm.)", "effective experts",
              "dead", "polarized"]
    rows = [[task, *(f"{w:.3f}" for w in g["mean_weight"]), f"{g['normalized_entropy']:.3f}",
             f"{g['effective_experts']:.2f}", str(g["dead_experts"]), "yes" if g["polarized"] else "no"]
            for task, g in gates.items()]
    return ["## Gate utilization (test split, eval mode)", "",
            "Mean gate weight per expert; entropy 1 = uniform mixing; an expert is dead for a task below "
            "0.01 mean weight.", "", *_table(header, rows), "", f"![gate heatmap]({HEATMAP_FILE})", ""]


def render_bundle_report(trained: Trained, window: dict) -> str:
    spec, m, s = trained.spec, trained.metrics, training_summary(trained)
    k = spec.eval.ndcg_k
    rows = window.get("rows", {})
    weights = trained.history[-1]["task_weights"] if trained.history else {}
    lines = [
        f"# Training report: {spec.name}", "",
        f"- data: `{window.get('source')}`, {window.get('start')} to {window.get('end')}",
        f"- rows: train {rows.get('train', 0):,}, valid {rows.get('valid', 0):,}, test {rows.get('test', 0):,} "
        "(split by time)",
        f"- model: {trained.args.arch}, {trained.args.num_experts} experts {trained.args.expert_hidden}, "
        f"towers {trained.args.tower_hidden}, embedding dim {trained.args.embedding_dim}, "
        f"expert dropout {trained.args.expert_dropout}",
        f"- training: {s['epochs']} epochs (best {s['best_epoch']}, early stopping on validation loss), "
        f"{s['train_seconds']:.1f} s, {s['samples_per_second']:,.0f} samples/s; loss balancing "
        f"{spec.train.loss_balancing}, final task weights "
        + ", ".join(f"{t} {w:.3g}" for t, w in weights.items()), "",
        "## Metrics (observed labels only)", "",
        *_table(["task", "metric", "valid", "test", "observed (test)"],
                [list(r) for r in metrics_rows(m, spec.tasks)]), "",
        f"NDCG@{k} per request of the score {_weights_text(spec.score_weights())} "
        f"(gain {_weights_text(spec.gain_weights())}): valid {_fmt(m['valid'][f'ndcg@{k}'])}, "
        f"test {_fmt(m['test'][f'ndcg@{k}'])}", "",
        f"![training curves]({CURVES_FILE})", "",
    ]
    if "gates" in m["test"]:
        lines += _gate_section(m["test"]["gates"])
    return "\n".join(lines)


def _weights_text(weights: dict[str, float]) -> str:
    return " + ".join(f"{w:g}*{t}" for t, w in weights.items())


def plot_curves(history: list[dict], path: Path) -> None:
    tasks = list(history[0]["train_loss"])
    epochs = [h["epoch"] for h in history]
    best = min(history, key=lambda e: e["valid_loss"])["epoch"]
    cols = min(len(tasks), 4)
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        ax.plot(epochs, [h["train_loss"][task] for h in history], "o-", label="train")
        ax.plot(epochs, [h["valid_task_loss"][task] for h in history], "s-", label="valid")
        ax.axvline(best, color="grey", linestyle=":", label=f"best epoch {best}")
        ax.set_title(task)
        ax.set_xlabel("epoch")
        ax.set_ylabel("masked loss")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Loss per task (regression losses on scaled labels)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gate_heatmap(gates: dict[str, dict], path: Path) -> None:
    tasks = list(gates)
    w = np.array([gates[t]["mean_weight"] for t in tasks])  # (T, E)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * w.shape[1], 1.2 + 0.55 * len(tasks)))
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(0.5, float(w.max())), aspect="auto")
    for (i, j), v in np.ndenumerate(w):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.35 else "black", fontsize=9)
    ax.set_xticks(range(w.shape[1]), [f"expert {j}" for j in range(w.shape[1])], rotation=30)
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set_title("Mean gate weight (test split)")
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_bundle_report(trained: Trained, out_dir: Path, window: dict) -> list[Path]:
    """Write report.md and its PNGs into out_dir; returns the files written."""
    out_dir = Path(out_dir)
    written = [out_dir / REPORT_FILE]
    written[0].write_text(render_bundle_report(trained, window))
    if trained.history:
        plot_curves(trained.history, out_dir / CURVES_FILE)
        written.append(out_dir / CURVES_FILE)
    if "gates" in trained.metrics["test"]:
        plot_gate_heatmap(trained.metrics["test"]["gates"], out_dir / HEATMAP_FILE)
        written.append(out_dir / HEATMAP_FILE)
    return written
