"""A human-readable account of one training run, written into the bundle.

report.md            data window, rows per split, requests, warnings, the architecture trained, metrics per
                     task, NDCG, each head's best epoch, gate statistics (shared vs own experts), timing
training_curves.png  train / valid loss per epoch, one panel per task
gate_heatmap.png     mean gate weight per task and expert (gated archs: MMoE, OMoE, CGC, PLE)
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from training.bundle.metric_tables import (  # noqa: E402
    BASELINE_NAME,
    RANKER_NAME,
    behind,
    legend,
    markdown_table,
    profile_leads,
    ranker_line,
    run_lambdamart_warnings,
    split_rows,
    text_table,
)
from training.evaluation.baseline import split_baseline  # noqa: E402
from training.evaluation.metrics import gate_warnings  # noqa: E402
from training.fit.early_stopping import head_metric  # noqa: E402
from training.fit.train import Trained  # noqa: E402
from training.modeling.args import ModelArgs  # noqa: E402
from training.spec import RankerSpec  # noqa: E402

REPORT_FILE = "report.md"
CURVES_FILE = "training_curves.png"
HEATMAP_FILE = "gate_heatmap.png"


def training_summary(trained: Trained) -> dict:
    """Epochs, best epoch, wall time and throughput of the fit, and each head's best epoch."""
    h = trained.history
    epoch_seconds = sum(e["seconds"] for e in h)
    rows = len(trained.prepared.train)
    best = trained.stopping.get("best_epoch") or (min(h, key=lambda e: e["valid_loss"])["epoch"] if h else None)
    out = {"epochs": len(h), "best_epoch": best, "train_seconds": round(trained.train_seconds, 2),
           "samples_per_second": round(rows * len(h) / epoch_seconds, 1) if epoch_seconds else None}
    if trained.stopping.get("heads"):
        out["per_task_stopping"] = {"mode": trained.spec.train.per_task_stopping,
                                    "heads": trained.stopping["heads"], "combined": trained.stopping.get("combined")}
    return out


def architecture_text(trained: Trained) -> str:
    """The architecture actually trained, in words (only the keys that mean something for it)."""
    a, spec = trained.args, trained.spec
    shape = f"({', '.join(map(str, a.expert_hidden))})"
    text = {
        "mmoe": f"MMoE: {a.num_experts} shared experts {shape}, one gate per task",
        "omoe": f"OMoE: {a.num_experts} shared experts {shape}, one gate for every task",
        "cgc": f"CGC: {a.task_experts} expert(s) per task + {a.shared_experts} shared experts {shape}, one gate per task",
        "ple": f"PLE: {a.levels} levels of {a.task_experts} expert(s) per task + {a.shared_experts} shared experts "
               f"{shape}, gates per task and level",
        "shared_bottom": f"shared-bottom: one shared MLP {shape}",
        "single_task": f"single-task: one independent model per task (MLP {shape})",
    }[a.arch]
    if a.expert_dropout is not None:
        text += f", expert dropout {a.expert_dropout:g}"
    text += f"; towers ({', '.join(map(str, a.tower_hidden))}), embedding dim {a.embedding_dim}"
    if a.cross_layers:
        text += f"; {a.cross_layers} DCN-v2 cross layer(s) at the bottom of each expert"
    if a.numeric_embedding == "ple":
        text += f"; numeric features piecewise-linear encoded over up to {max(map(len, a.numeric_edges)) - 1} quantile bins"
    elif a.numeric_embedding == "ple_auto":
        text += "; " + ple_auto_text(a, [f.name for f in trained.prepared.encoders.numeric])
    elif a.numeric_embedding == "periodic":
        text += "; numeric features embedded by periodic (sin/cos) functions"
    if (bias := spec.model.bias_tower) is not None:
        text += (f"; bias tower over {bias.columns()} added to {bias.tasks} in training only "
                 "(not exported: the served model has no bias input)")
    return text


def ple_auto_text(a: ModelArgs, numeric_names: list[str]) -> str:
    """Which numeric features `ple_auto` binned (chosen on the training split) and which it left as numbers."""
    binned = [numeric_names[j] for j in a.numeric_binned]
    rest = [n for j, n in enumerate(numeric_names) if j not in a.numeric_binned]
    if not binned:
        return "numeric_embedding ple_auto binned no numeric feature (none zero-inflated or heavy-tailed): all as numbers"
    bins = max(map(len, a.numeric_edges)) - 1
    return (f"numeric features {binned} piecewise-linear encoded over up to {bins} quantile bins (ple_auto: "
            f"zero-inflated or heavy-tailed on the training split), {rest or 'no other'} as numbers")


def _fmt(x: float | None, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def evaluated_splits(metrics: dict) -> list[str]:
    """The splits a run measured, in order: valid, and test only when it was asked for."""
    return [split for split in ("valid", "test") if split in metrics]


def requests_text(metrics: dict) -> str:
    """One line about a split's requests: how many, how large, how many NDCG counted."""
    r = metrics.get("requests")
    if not r:
        return "no requests (no data.request_id): ranking metrics n/a"
    if not r["count"]:
        return "no requests"
    size = r["size"]
    return (f"{r['count']:,} requests, rows per request median {size['median']:g}, p90 {size['p90']:g}, max "
            f"{size['max']:,}; NDCG over the {r['ndcg_requests']:,} with 2+ rows and a positive gain")


def _task_width(spec: RankerSpec) -> int:
    return max(14, *(len(t.name) + 2 for t in spec.tasks))


def split_text(metrics: dict, spec: RankerSpec, baseline: dict | None = None) -> list[str]:
    """One split's metrics for a terminal: the table (metric_tables.split_rows), its legend, the LambdaMART
    comparison, the served profiles' NDCG (and lead over LambdaMART), the requests and, with a baseline,
    where the GBDT is ahead."""
    k = spec.eval.ndcg_k
    w = max([_task_width(spec), *(len(p) + 2 for p in metrics.get("profiles") or {})])
    lines = [text_table(*split_rows(metrics, spec, baseline), w), legend(metrics, baseline)]
    if (line := ranker_line(metrics, baseline, spec)) is not None:
        lines.append(line)
    if metrics.get("profiles"):
        leads = profile_leads(metrics, baseline, spec)
        lines.append("served profiles, ranked as the server ranks" + (f" (lead: over {RANKER_NAME})" if leads else "")
                     + ":")
        lines += [f"{name:<{w}}{f'ndcg@{k}':<12}{_fmt(value):>11}"
                  + (f"{_lead(leads[name]):>11}" if name in leads else "") for name, value in metrics["profiles"].items()]
    lines.append(requests_text(metrics))
    if baseline and (worse := behind(metrics, baseline, spec)):
        lines.append(f"the {BASELINE_NAME} baseline is ahead on {', '.join(worse)}")
    return lines


def _lead(d: float | None) -> str:
    return "n/a" if d is None else f"{d:+.4f}"


def metrics_table(metrics: dict, spec: RankerSpec) -> str:
    """`ranker evaluate`'s output: one split's metrics (scored_metrics), beside the baselines it has."""
    baseline = metrics.get("baseline")
    lines = []
    if baseline and baseline.get("error"):
        lines.append(f"{BASELINE_NAME} baseline (eval.baseline): {baseline['error']}")
        baseline = None
    return "\n".join([*split_text(metrics, spec, baseline), *lines])


def summary_table(trained: Trained, metrics: dict | None = None) -> str:
    """`ranker train`'s summary for the terminal: each measured split (valid; test with --eval-test) as
    `ranker evaluate` prints it, from the manifest's metrics (default: the torch model's, before export)."""
    m = metrics if metrics is not None else _torch_metrics(trained)
    lines = []
    for split in evaluated_splits(m):
        lines += [f"{split} split:", *split_text(m[split], trained.spec, split_baseline(m.get("baseline"), split)), ""]
    s = training_summary(trained)
    lines.append(f"{s['epochs']} epochs (best {s['best_epoch']}), {s['train_seconds']:.1f} s, "
                 f"{s['samples_per_second']:,.0f} samples/s")
    if "test" not in m:
        lines.append("test metrics: not measured (add --eval-test, or run `ranker evaluate` once the model is chosen)")
    return "\n".join(lines)


def _torch_metrics(trained: Trained) -> dict:
    """The run's metrics before there is a bundle: the torch model's splits and the GBDT baseline."""
    return {**trained.metrics, **({"baseline": trained.baseline} if trained.baseline else {})}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows)]


def expert_labels(model: object, n_experts: int) -> list[str]:
    """Column names of a task gate's slots: e0.. for MMoE, own0.. / shared0.. for CGC and PLE."""
    slots = model.shared_slots() if hasattr(model, "shared_slots") else [True] * n_experts
    if all(slots):
        return [f"e{i}" for i in range(n_experts)]
    own = sum(not x for x in slots)
    return [f"own{i}" for i in range(own)] + [f"shared{i}" for i in range(n_experts - own)]


def _gate_section(metrics: dict, split: str, model: object) -> list[str]:
    gates, by_level = metrics["gates"], metrics.get("gates_by_level")
    labels = expert_labels(model, len(next(iter(gates.values()))["mean_weight"]))
    shared = "shared_weight" in next(iter(gates.values()))
    header = ["task", *labels, *(["on shared experts"] if shared else []), "entropy (norm.)",
              "effective experts", "dead", "polarized"]
    rows = [[task, *(f"{w:.3f}" for w in g["mean_weight"]), *([f"{g['shared_weight']:.3f}"] if shared else []),
             f"{g['normalized_entropy']:.3f}", f"{g['effective_experts']:.2f}", str(g["dead_experts"]),
             "yes" if g["polarized"] else "no"] for task, g in gates.items()]
    lines = [f"## Gate utilization ({split} split, eval mode)", "",
             "Mean gate weight per expert; entropy 1 = uniform mixing; an expert is dead for a task below "
             "0.01 mean weight." + (" Each task's gate mixes its own experts (own*) and the experts every task "
                                    "shares (shared*); *on shared experts* is their total weight." if shared else ""),
             "", *_table(header, rows), ""]
    for warning in gate_warnings(gates):
        lines += [f"> **Warning:** {warning}", ""]
    if by_level:
        lines += ["Weight on the shared experts per extraction level (the top level feeds the towers):", "",
                  *_table(["task", *(f"level {i + 1}" for i in range(len(by_level)))],
                          [[t, *(f"{lvl[t]['shared_weight']:.3f}" for lvl in by_level)] for t in gates]), ""]
    return [*lines, f"![gate heatmap]({HEATMAP_FILE})", ""]


def _stopping_section(trained: Trained) -> list[str]:
    heads = trained.stopping.get("heads")
    if not heads:
        return []
    combined = trained.stopping.get("combined") or {}
    aux = set(trained.spec.auxiliary_tasks())
    scale = {t.name: t.lr_scale for t in trained.spec.tasks}
    scaled = any(v != 1.0 for v in scale.values())
    rows = [[task + (" (auxiliary)" if task in aux else ""), h["metric"], str(h["best_epoch"]), _fmt(h["at_joint"]),
             _fmt(h["at_best"]), "n/a" if h["gain"] is None else f"{h['gain']:+.4f}",
             ("yes" if combined[task]["swapped"] else "no") if task in combined else "-",
             *([f"{scale.get(task, 1.0):g}"] if scaled else [])]
            for task, h in heads.items()]
    mode = trained.spec.train.per_task_stopping
    note = ("`per_task_stopping: combine`: a head whose own best epoch improves its validation metric keeps its own "
            "parts (tower, gate, own experts) from that epoch over the shared parts of the best epoch."
            if mode == "combine" else
            "`per_task_stopping: off`: every head comes from the best epoch; the gain column is what stopping "
            "each head at its own best epoch would have given (`combine` exports part of it).")
    return ["## Per-task early stopping (validation split)", "",
            f"Best epoch overall: {trained.stopping.get('best_epoch')}. Gain: the head's metric at its own best "
            "epoch minus at the best overall epoch (positive = better; RMSE gains are reductions). " + note, "",
            *_table(["task", "metric", "best epoch", "at best overall", "at own best", "gain", "own parts used",
                     *(["lr scale"] if scaled else [])], rows), ""]


def _auxiliary_section(trained: Trained) -> list[str]:
    """The `serve: false` heads: trained beside the others, not in the bundle; their torch validation metric."""
    aux = [t for t in trained.spec.tasks if not t.serve]
    valid = trained.metrics.get("valid", {}).get("tasks", {})
    heads = trained.stopping.get("heads") or {}
    if not aux:
        return []
    rows = []
    for t in aux:
        name, value, _ = head_metric(valid[t.name], t.label_transform) if t.name in valid else ("n/a", None, True)
        rows.append([t.name, t.type, name, _fmt(value), str(heads.get(t.name, {}).get("best_epoch", "n/a")),
                     f"{t.lr_scale:g}"])
    return ["## Auxiliary tasks (serve: false)", "",
            "Trained with their own loss and label mask beside the served heads, and not exported: not outputs of "
            "model.onnx, not tasks of the manifest, not nameable in weights profiles; the metric is the torch "
            "head's on the validation split.", "",
            *_table(["task", "type", "metric", "valid", "best epoch", "lr scale"], rows), ""]


def _data_lines(trained: Trained, window: dict, m: dict) -> list[str]:
    rows = window.get("rows", {})
    when = f", {window['start']} to {window['end']}" if window.get("start") else ""
    source = window.get("source")
    where = ", ".join(f"{k} `{v}`" for k, v in source.items()) if isinstance(source, dict) else f"`{source}`"
    lines = [f"- data: {where}{when}",
             f"- rows: train {rows.get('train', 0):,}, valid {rows.get('valid', 0):,}, test {rows.get('test', 0):,} "
             f"(split {window.get('split', trained.prepared.splits.method)})"]
    lines += [f"- requests ({split}): {requests_text(m[split])}" for split in evaluated_splits(m)]
    return lines


def _warning_lines(warnings: list[str]) -> list[str]:
    return ["## Warnings", "", *(f"- {w}" for w in warnings), ""] if warnings else []


def _profiles_section(m: dict, spec: RankerSpec) -> list[str]:
    """NDCG@k per served profile, from the bundle's served heads (training/bundle/export.py `served_ranking`),
    with each profile's lead over LambdaMART where it was fitted."""
    ranking = m["profiles"]
    if "error" in ranking:
        return ["## Served profiles", "", f"Not measured for `{ranking['weights']}`: {ranking['error']}", ""]
    k = ranking["k"]
    splits = evaluated_splits(ranking)
    leads = {split: profile_leads({"profiles": ranking[split]}, split_baseline(m.get("baseline"), split), spec)
             for split in splits}
    led = [split for split in splits if leads[split]]
    rows = [[f"`{p}`", *(_fmt(ranking[split][p]) for split in splits), *(_lead(leads[split][p]) for split in led)]
            for p in ranking[splits[-1]]]
    return ["## Served profiles", "",
            f"NDCG@{k} per profile of `{ranking['weights']}`, ranked by the server's code over the bundle's "
            "served (onnxruntime, calibrated) heads; gain as above"
            + (f"; lead: the profile's NDCG@{k} minus the {RANKER_NAME} baseline's (+ = the profile ranks better)."
               if led else "."), "",
            *_table(["profile", *(f"{split} NDCG@{k}" for split in splits),
                     *(f"{split} lead over {RANKER_NAME}" for split in led)], rows), ""]


def _metrics_section(m: dict, spec: RankerSpec) -> list[str]:
    """One table per evaluated split (metric_tables.split_rows), the NDCG line, and where the GBDT leads."""
    k, lines = spec.eval.ndcg_k, ["## Metrics (observed labels only)", ""]
    for split in evaluated_splits(m):
        baseline = split_baseline(m.get("baseline"), split)
        lines += [f"{split} split ({legend(m[split], baseline)})", "",
                  *markdown_table(*split_rows(m[split], spec, baseline)), ""]
        if (line := ranker_line(m[split], baseline, spec)) is not None:
            lines += [f"{line} ({split}).", ""]
        if baseline and (worse := behind(m[split], baseline, spec)):
            lines += [f"The {BASELINE_NAME} is ahead on {', '.join(worse)} ({split}).", ""]
    if spec.data.request_id is not None:
        lines += [f"NDCG@{k} per request of the `eval.score_weights` profile {_weights_text(spec.score_weights())} "
                  f"over the model's heads (gain {_weights_text(spec.gain_weights())}): "
                  + ", ".join(f"{split} {_fmt(m[split][f'ndcg@{k}'])}" for split in evaluated_splits(m)), ""]
    if "test" not in m:
        lines += ["Test metrics were not measured (`ranker train --eval-test`, or `ranker evaluate` on the bundle).", ""]
    if m.get("baseline"):
        lines += [f"The {BASELINE_NAME}: one scikit-learn HistGradientBoosting model per task on the same encoded "
                  f"features and split (`eval.baseline`), fitted in {m['baseline']['seconds']:.1f} s"
                  + _ranker_fit_text(m["baseline"].get("lambdamart")) + ".", ""]
    return lines


def _ranker_fit_text(ranker: dict | None) -> str:
    if ranker is None:
        return "; no LambdaMART baseline (it ranks requests: no data.request_id, or no positive gain)"
    return (f"; the {RANKER_NAME}: LightGBM's lambdarank on the NDCG gain, early-stopped on the validation "
            f"NDCG, fitted in {ranker['seconds']:.1f} s")


def render_bundle_report(trained: Trained, window: dict, metrics: dict | None = None) -> str:
    """report.md from the manifest's metrics (`metrics`; without them, the torch model's, as before export)."""
    spec, s = trained.spec, training_summary(trained)
    m = metrics if metrics and "valid" in metrics else {**_torch_metrics(trained), **(metrics or {})}
    splits = evaluated_splits(m)
    weights = trained.history[-1]["task_weights"] if trained.history else {}
    lines = [
        f"# Training report: {spec.name}", "",
        *_data_lines(trained, window, m),
        f"- model: {architecture_text(trained)}",
        f"- training: {s['epochs']} epochs (best {s['best_epoch']}, early stopping on validation "
        f"{spec.train.early_stopping_metric}, per-task stopping {spec.train.per_task_stopping}), "
        f"{s['train_seconds']:.1f} s, {s['samples_per_second']:,.0f} samples/s; loss balancing "
        f"{spec.train.loss_balancing}, lr {spec.train.lr:g} ({spec.train.lr_schedule}), "
        + (f"weights kept: a moving average over {spec.train.ema_epochs:g} epochs (train.ema_epochs), "
           if spec.train.ema_epochs else "weights kept: the raw weights (train.ema_epochs null), ")
        + "final task weights " + ", ".join(f"{t} {w:.3g}" for t, w in weights.items()), "",
        *_warning_lines([*trained.warnings(m), *run_lambdamart_warnings(m, spec)]),
        *_metrics_section(m, spec),
        f"![training curves]({CURVES_FILE})", "",
        *_stopping_section(trained),
        *_auxiliary_section(trained),
    ]
    if "profiles" in m:
        lines += _profiles_section(m, spec)
    if "calibration" in m:
        from training.bundle.calibration import render_section

        lines += render_section(m["calibration"])
    if "gates" in m[splits[-1]]:
        lines += _gate_section(m[splits[-1]], splits[-1], trained.model)
    return "\n".join(lines)


def _weights_text(weights: dict[str, float]) -> str:
    return " + ".join(f"{w:g}*{t}" for t, w in weights.items())


def plot_curves(history: list[dict], path: Path, best: int | None = None) -> None:
    tasks = list(history[0]["train_loss"])
    epochs = [h["epoch"] for h in history]
    best = best or min(history, key=lambda e: e["valid_loss"])["epoch"]
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


def plot_gate_heatmap(gates: dict[str, dict], path: Path, labels: list[str] | None = None) -> None:
    tasks = list(gates)
    w = np.array([gates[t]["mean_weight"] for t in tasks])  # (T, E)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * w.shape[1], 1.2 + 0.55 * len(tasks)))
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(0.5, float(w.max())), aspect="auto")
    for (i, j), v in np.ndenumerate(w):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.35 else "black", fontsize=9)
    ax.set_xticks(range(w.shape[1]), labels or [f"expert {j}" for j in range(w.shape[1])], rotation=30)
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set_title("Mean gate weight")
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_bundle_report(trained: Trained, out_dir: Path, window: dict, metrics: dict | None = None) -> list[Path]:
    """Write report.md and its PNGs into out_dir; returns the files written.

    `metrics`: the manifest's metrics; its "profiles" and "calibration" entries get their own sections.
    """
    out_dir = Path(out_dir)
    written = [out_dir / REPORT_FILE]
    written[0].write_text(render_bundle_report(trained, window, metrics))
    if trained.history:
        plot_curves(trained.history, out_dir / CURVES_FILE, trained.stopping.get("best_epoch"))
        written.append(out_dir / CURVES_FILE)
    last = evaluated_splits(trained.metrics)[-1]
    if "gates" in trained.metrics[last]:
        gates = trained.metrics[last]["gates"]
        labels = expert_labels(trained.model, len(next(iter(gates.values()))["mean_weight"]))
        plot_gate_heatmap(gates, out_dir / HEATMAP_FILE, labels)
        written.append(out_dir / HEATMAP_FILE)
    return written
