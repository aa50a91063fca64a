"""Offline metrics: per-task quality on observed labels, ranking quality per request, gate health."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from service.contract.calibration import PROB_EPS
from training.data.requests import request_stats, size_warnings
from training.evaluation import ranking as R
from training.evaluation.constant import Constant
from training.evaluation.served import gains, score_weights_profile
from training.spec import RankerSpec, TaskConfig

# A task "polarizes" when its gate leans on one expert: its mean weight on the top expert exceeds
# this, or it effectively uses fewer experts than EFFECTIVE_EXPERTS_FLOOR (exp of the entropy).
POLARIZED_TOP_WEIGHT = 0.9
EFFECTIVE_EXPERTS_FLOOR = 1.5
DEAD_EXPERT_WEIGHT = 0.01  # an expert whose mean gate weight is below this is "dead" for the task
# A gate is "near-uniform" when it mixes (almost) every expert equally, on average and row by row: at least
# this share of the experts are effectively used and the rows' normalized entropy is at least this share too.
UNIFORM_SHARE = 0.9
# A split too small to compare models on: an AUC this uncertain (one standard error), or an RMSE
# over fewer labels, gets a warning in the CLI and report.md.
AUC_SE_WARN = 0.02
MIN_OBSERVED_RMSE = 100
NOISE_SE = 2.0  # a model is "better than its constant" when it is ahead by this many standard errors
LOSS_KEYS = ("log_loss", "rmse", "rmse_log1p")  # lower is better; skill is 1 - model / constant of each


def auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC on observed (non-NaN) labels; None when only one class was observed."""
    seen = ~np.isnan(labels)
    y = labels[seen]
    if y.size == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, scores[seen]))


def rmse(labels: np.ndarray, predictions: np.ndarray) -> float | None:
    seen = ~np.isnan(labels)
    if not seen.any():
        return None
    return float(np.sqrt(np.mean((labels[seen] - predictions[seen]) ** 2)))


def ndcg_at_k(request: np.ndarray, scores: np.ndarray, gains: np.ndarray, k: int) -> float | None:
    """Mean NDCG@k over requests with at least two rows and one positive gain; None if there are none.

    A one-row request ranks nothing (its NDCG is always 1.0), so it does not count. Each request's
    NDCG is ranking.ndcg's, the one definition every report, gate and replay uses.

    Args:
        request: (N,) dense request index per row (rows of a request in any order).
        scores: (N,) model scores; gains: (N,) relevance, >= 0.
    """
    if len(request) == 0:
        return None
    per = R.ndcg(R.Requests.of_index(request), scores, gains, k)
    counted = ~np.isnan(per)
    if not counted.any():
        return None
    return float(np.mean(per[counted]))


def gate_stats(gates: np.ndarray, task_names: list[str], shared_slots: list[bool] | None = None) -> dict[str, dict]:
    """Gate utilization per task from eval-mode gate weights.

    Args:
        gates: (T, N, E) softmax weights per task, row and expert.
        shared_slots: (E,) whether each slot is an expert every task shares (CGC / PLE have both
            kinds; in an MMoE every expert is shared).
    Returns:
        task -> mean_weight (E,), normalized_entropy (mean per-row entropy / log E, 1 = uniform),
        effective_experts (exp of the entropy of the mean weights), dead_experts, polarized, and
        with both kinds of slot, shared_weight (mean total weight on the shared experts).
    """
    n_experts = gates.shape[-1]
    out = {}
    for t, name in enumerate(task_names):
        w = gates[t]  # (N, E)
        mean_w = w.mean(axis=0)
        row_entropy = -(w * np.log(np.clip(w, 1e-12, None))).sum(axis=1)
        mean_entropy = -(mean_w * np.log(np.clip(mean_w, 1e-12, None))).sum()
        effective = float(np.exp(mean_entropy))
        out[name] = {
            "mean_weight": [round(float(x), 6) for x in mean_w],
            "normalized_entropy": float(row_entropy.mean() / np.log(n_experts)) if n_experts > 1 else 0.0,
            "effective_experts": effective,
            "dead_experts": int((mean_w < DEAD_EXPERT_WEIGHT).sum()),
            "polarized": bool(mean_w.max() > POLARIZED_TOP_WEIGHT or effective < EFFECTIVE_EXPERTS_FLOOR),
        }
        if shared_slots is not None and 0 < sum(shared_slots) < len(shared_slots):
            out[name]["shared_weight"] = float(mean_w[np.asarray(shared_slots, dtype=bool)].sum())
    return out


def gate_warnings(stats: dict[str, dict]) -> list[str]:
    """What to try when task gates (gate_stats) polarize or never specialize; [] when neither."""
    n_experts = len(next(iter(stats.values()))["mean_weight"]) if stats else 0
    if n_experts < 2:
        return []
    out = []
    for task, g in stats.items():
        top = max(g["mean_weight"])
        if top > POLARIZED_TOP_WEIGHT:
            out.append(f"gate of task {task!r} polarized: {top:.0%} of its mean weight on expert "
                       f"{g['mean_weight'].index(top)} (> {POLARIZED_TOP_WEIGHT:.0%}), so the other experts "
                       "barely serve it. Try model.expert_dropout (e.g. 0.1-0.3: drops experts from the mix "
                       "in training), more model.num_experts, train.lr_schedule: warmup, or a per-task "
                       "arch (cgc) if the task needs its own expert")
    uniform = [task for task, g in stats.items() if g["effective_experts"] >= UNIFORM_SHARE * n_experts
               and g["normalized_entropy"] >= UNIFORM_SHARE]
    if uniform:
        out.append(f"gates of {uniform} are near-uniform (effective experts >= {UNIFORM_SHARE:.0%} of "
                   f"{n_experts}, row entropy >= {UNIFORM_SHARE:.0%}): their experts never specialize and the "
                   "model acts as a shared bottom. Try fewer model.num_experts, less model.expert_dropout, more "
                   "epochs, or compare model.arch shared_bottom (the tasks may not need separate experts)")
    return out


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float | None:
    """Mean binary cross-entropy on observed labels (probabilities clipped to [1e-7, 1 - 1e-7])."""
    seen = ~np.isnan(labels)
    if not seen.any():
        return None
    p = np.clip(probs[seen].astype(np.float64), PROB_EPS, 1 - PROB_EPS)
    y = labels[seen]
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def head_metrics(task: TaskConfig, labels: np.ndarray, preds: np.ndarray) -> dict[str, float | None]:
    """The one definition of a head's quality on (N,) labels (NaN = not observed) and (N,) predictions
    in label units: AUC and log loss (binary); RMSE, and for log1p-trained heads the RMSE of log1p, the
    scale the head is trained on, where a few huge labels do not decide it (regression)."""
    if task.type == "binary":
        return {"auc": auc(labels, preds), "log_loss": log_loss(labels, preds)}
    out = {"rmse": rmse(labels, preds)}
    if task.label_transform == "log1p":
        out["rmse_log1p"] = rmse(np.log1p(np.maximum(labels, 0.0)), np.log1p(np.maximum(preds, 0.0)))
    return out


def constant_metrics(task: TaskConfig, labels: np.ndarray, constant: Constant) -> dict[str, float | None]:
    """head_metrics of always predicting the training mean (on the trained scale for RMSE of log1p)."""
    out = head_metrics(task, labels, np.full(len(labels), constant.mean))
    if task.type == "binary":
        out["auc"] = 0.5 if out["auc"] is not None else None  # a constant ranks nothing
    elif constant.mean_log1p is not None:
        seen = ~np.isnan(labels)
        out["rmse_log1p"] = rmse(np.log1p(np.maximum(labels, 0.0)), np.full(len(labels), constant.mean_log1p)) \
            if seen.any() else None
    return {"value": constant.mean, **({"value_log1p": constant.mean_log1p} if constant.mean_log1p is not None else {}),
            **out}


def skill(model: dict, constant: dict) -> dict[str, float]:
    """1 - model / constant of each loss both have (log loss, RMSE, RMSE of log1p): 0 = no better than the
    constant, 1 = perfect, < 0 = worse than the constant."""
    return {key: 1.0 - model[key] / constant[key] for key in LOSS_KEYS
            if model.get(key) is not None and constant.get(key)}


def ranking_quality(gains: np.ndarray, scores: np.ndarray, request: np.ndarray | None, k: int) -> dict:
    """A ranking head's metric: NDCG@k of its own scores on its gain, over the requests NDCG counts."""
    seen = ~np.isnan(gains)
    value = None
    if request is not None and seen.any() and not np.isnan(scores).all():
        value = ndcg_at_k(request[seen], scores[seen], gains[seen], k)
    return {"ndcg": value, "observed": int(seen.sum())}


def task_quality(task: TaskConfig, labels: np.ndarray, preds: np.ndarray, served: np.ndarray | None,
                 constant: Constant | None) -> tuple[dict, str | None]:
    """One task's metrics entry and, when neither head is ahead of the constant beyond noise, a warning.

    {metric: value of the model's own head, "observed", "served": {...} (only where the served head
    differs: calibration, smearing), "constant": {...} and "skill": {...} (with a constant)}.
    """
    if np.isnan(preds).all():  # a baseline that fitted nothing for this task
        return {**{k: None for k in head_metrics(task, labels[:0], preds[:0])}, "observed": int((~np.isnan(labels)).sum())}, None
    m = head_metrics(task, labels, preds)
    heads = [("model", preds, m)]
    if served is not None and not np.array_equal(served, preds):
        m["served"] = head_metrics(task, labels, served)
        heads.append(("served", served, m["served"]))
    m["observed"] = int((~np.isnan(labels)).sum())
    if constant is None:
        return m, None
    m["constant"] = constant_metrics(task, labels, constant)
    for _, _, entry in heads:
        entry["skill"] = skill(entry, m["constant"])
    verdicts = [beats_constant(task, labels, p, constant, entry.get("auc")) for _, p, entry in heads]
    if any(v is None for v in verdicts) or any(verdicts):
        return m, None
    key = "auc" if task.type == "binary" else ("rmse_log1p" if task.label_transform == "log1p" else "rmse")
    what = "prevalence" if task.type == "binary" else "mean"
    return m, (f"{task.name}: no better than predicting the training {what} "
               f"{m['constant'].get('value_log1p' if key == 'rmse_log1p' else 'value'):.4g} beyond noise ({key} "
               f"{m[key]:.4f} vs {m['constant'][key]:.4f} on {m['observed']:,} labels): its features may not "
               "predict it, or the model did not learn it")


def beats_constant(task: TaskConfig, labels: np.ndarray, preds: np.ndarray, constant: Constant,
                   auc_value: float | None) -> bool | None:
    """Whether the model is ahead of the constant by more than noise on these rows (None: too few labels).

    Binary: AUC - 0.5 above NOISE_SE standard errors (Hanley & McNeil). Regression: the mean paired
    difference of squared errors (constant minus model, per row, on the scale the head is judged on:
    log1p for log1p-trained heads) above NOISE_SE standard errors of that mean.
    """
    seen = ~np.isnan(labels)
    y, p = labels[seen], preds[seen].astype(np.float64)
    if y.size < 2:
        return None
    if task.type == "binary":
        if auc_value is None:
            return None
        pos = int((y > 0.5).sum())
        return auc_value - 0.5 > NOISE_SE * auc_standard_error(auc_value, pos, y.size - pos)
    if task.label_transform == "log1p":
        y, p, c = np.log1p(np.maximum(y, 0.0)), np.log1p(np.maximum(p, 0.0)), constant.mean_log1p
    else:
        c = constant.mean
    diff = (y - c) ** 2 - (y - p) ** 2  # > 0 where the model is closer than the constant
    return bool(diff.mean() > NOISE_SE * diff.std(ddof=1) / np.sqrt(diff.size))


def prediction_metrics(preds: np.ndarray, raw_labels: np.ndarray, request: np.ndarray | None,
                       spec: RankerSpec, served: np.ndarray | None = None,
                       constants: dict[str, Constant] | None = None) -> dict:
    """Quality of natural-unit predictions on one split: the one definition every report, `ranker
    evaluate`, the baselines and the gates use.

    Args:
        preds: (N, T) the model's own head outputs in spec task order (the graph's outputs, before any
            calibration); raw_labels: (N, T), NaN = not observed;
        request: (N,) dense request index per row (grouped by value), or None without a request_id;
        served: (N, T) the heads as served (calibrated), when they are known (a bundle);
        constants: task -> the training split's constant prediction (the constant baseline).
    Returns:
        {"rows", "tasks": {task: task_quality entry}, "ndcg@k", "requests", "warnings"}. NDCG ranks each
        request by the spec's score weights over the model's heads and gains by its gain weights over
        labels (null = 0); it is None (n/a) without requests of two or more rows. "requests" describes
        the groups ({"count", "size": {...}, "ndcg_requests", ...}; None without a request_id);
        "warnings" says when they look degenerate, a split is too small, or a head is no better than its
        constant.
    """
    names = spec.task_names()
    tasks, weak = {}, []
    for j, t in enumerate(spec.tasks):
        if t.listwise:
            tasks[t.name] = ranking_quality(raw_labels[:, j], preds[:, j], request, spec.eval.ndcg_k)
            continue
        tasks[t.name], warning = task_quality(t, raw_labels[:, j], preds[:, j],
                                              None if served is None else served[:, j], (constants or {}).get(t.name))
        weak += [warning] if warning else []
    # eval.score_weights is a profile, combined by the server's code (training/evaluation/served.py).
    score = score_weights_profile(spec).combine({t: preds[:, j] for j, t in enumerate(names)})
    gain = gains(spec, raw_labels)
    k = spec.eval.ndcg_k
    small = [*sample_warnings(tasks, raw_labels, spec), *weak]
    if request is None:
        return {"rows": int(len(preds)), "tasks": tasks, f"ndcg@{k}": None, "requests": None, "warnings": small}
    stats = request_stats(request)
    stats["ndcg_requests"] = ndcg_requests(request, gain)
    return {"rows": int(len(preds)), "tasks": tasks, f"ndcg@{k}": ndcg_at_k(request, score, gain, k),
            "requests": stats, "warnings": [*small, *size_warnings(stats, spec.data.request_id)]}


def auc_standard_error(auc_value: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil (1982): the standard error of an AUC measured on this many positives and negatives."""
    a = auc_value
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) / (positives * negatives)
    return float(np.sqrt(max(var, 0.0)))


def sample_warnings(tasks: dict[str, dict], raw_labels: np.ndarray, spec: RankerSpec) -> list[str]:
    """Tasks whose metric rests on too few labels to compare models by: an AUC whose standard error
    exceeds AUC_SE_WARN, or an RMSE over fewer than MIN_OBSERVED_RMSE labels."""
    out = []
    for j, t in enumerate(spec.tasks):
        m = tasks[t.name]
        y = raw_labels[:, j][~np.isnan(raw_labels[:, j])]
        if t.type == "binary" and m["auc"] is not None:
            pos = int((y > 0.5).sum())
            se = auc_standard_error(m["auc"], pos, len(y) - pos)
            if se > AUC_SE_WARN:
                out.append(f"{t.name}: AUC on {len(y)} labels ({pos} positive) has a standard error of about "
                           f"{se:.3f}; differences below {2 * se:.2f} are noise (a larger split steadies it)")
        elif t.type == "regression" and 0 < len(y) < MIN_OBSERVED_RMSE:
            out.append(f"{t.name}: RMSE on only {len(y)} labels; a larger split steadies it")
    return out


def ndcg_requests(request: np.ndarray, gains: np.ndarray) -> int:
    """How many requests NDCG averages over: two or more rows, at least one positive gain."""
    if len(request) == 0:
        return 0
    positive = np.bincount(request, weights=(gains > 0).astype(float)) > 0
    return int((positive & (np.bincount(request) > 1)).sum())


def score_stats(values: np.ndarray) -> dict:
    """Distribution summary of one head's outputs (natural units), as stored in the manifest."""
    v = np.asarray(values, dtype=np.float64)
    qs = {f"p{q:02d}": float(np.quantile(v, q / 100)) for q in (1, 5, 25, 50, 75, 95, 99)}
    return {"mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()), "max": float(v.max()),
            "quantiles": qs}
