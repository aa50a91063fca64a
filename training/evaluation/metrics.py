"""Offline metrics: per-task quality on observed labels, ranking quality per request, gate health."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from training.data.requests import request_stats, size_warnings
from training.spec import RankerSpec
from training.weights.served import score_weights_profile

# A task "polarizes" when its gate leans on one expert: its mean weight on the top expert exceeds
# this, or it effectively uses fewer experts than EFFECTIVE_EXPERTS_FLOOR (exp of the entropy).
POLARIZED_TOP_WEIGHT = 0.9
EFFECTIVE_EXPERTS_FLOOR = 1.5
DEAD_EXPERT_WEIGHT = 0.01  # an expert whose mean gate weight is below this is "dead" for the task
# A split too small to compare models on: an AUC this uncertain (one standard error), or an RMSE
# over fewer labels, gets a warning in the CLI and report.md.
AUC_SE_WARN = 0.02
MIN_OBSERVED_RMSE = 100


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

    A one-row request ranks nothing (its NDCG is always 1.0), so it does not count.

    Args:
        request: (N,) dense request index per row (rows of a request in any order).
        scores: (N,) model scores; gains: (N,) relevance, >= 0.
    """
    def dcg(order_key: np.ndarray) -> np.ndarray:
        order = np.lexsort((-order_key, request))  # by request, then key descending
        req_sorted = request[order]
        starts = np.r_[0, np.flatnonzero(req_sorted[1:] != req_sorted[:-1]) + 1]
        first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        pos = np.arange(len(order)) - first
        disc = np.where(pos < k, 1.0 / np.log2(pos + 2.0), 0.0)
        return np.bincount(req_sorted, weights=gains[order] * disc, minlength=int(request.max()) + 1)

    if len(request) == 0:
        return None
    ideal = dcg(gains)
    actual = dcg(scores)
    counted = (ideal > 0) & (np.bincount(request, minlength=len(ideal)) > 1)
    if not counted.any():
        return None
    return float(np.mean(actual[counted] / ideal[counted]))


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


def prediction_metrics(preds: np.ndarray, raw_labels: np.ndarray, request: np.ndarray | None,
                       spec: RankerSpec) -> dict:
    """Quality of natural-unit predictions on one split.

    Args:
        preds: (N, T) head outputs in spec task order; raw_labels: (N, T), NaN = not observed;
        request: (N,) dense request index per row (grouped by value), or None without a request_id.
    Returns:
        {"rows", "tasks": {task: {"auc" | "rmse" (+ "rmse_log1p"), "observed"}}, "ndcg@k", "requests",
        "warnings"}. NDCG ranks each request by the spec's score weights over heads and gains by its
        gain weights over labels (null = 0); it is None (n/a) without requests of two or more rows.
        "requests" describes the groups ({"count", "size": {...}, "ndcg_requests", ...}; None without
        a request_id); "warnings" says when they look degenerate.
    """
    names = spec.task_names()
    tasks = {}
    for j, t in enumerate(spec.tasks):
        y, p = raw_labels[:, j], preds[:, j]
        tasks[t.name] = {"auc": auc(y, p)} if t.type == "binary" else {"rmse": rmse(y, p)}
        if t.label_transform == "log1p":
            # Heavy-tailed labels: the RMSE in label units is dominated by a few huge values, so also
            # report it on the scale the task is trained on.
            tasks[t.name]["rmse_log1p"] = rmse(np.log1p(np.maximum(y, 0.0)), np.log1p(np.maximum(p, 0.0)))
        tasks[t.name]["observed"] = int((~np.isnan(y)).sum())
    # eval.score_weights is a profile, combined by the server's code (training/weights/served.py).
    score = score_weights_profile(spec).combine({t: preds[:, j] for j, t in enumerate(names)})
    gain = np.zeros(len(preds))
    for t, w in spec.gain_weights().items():
        gain += w * np.nan_to_num(raw_labels[:, names.index(t)])
    k = spec.eval.ndcg_k
    small = sample_warnings(tasks, raw_labels, spec)
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
