"""Promotion gates: may a freshly trained candidate replace the CURRENT model?

Every gate compares one number with one threshold and says by how much it passed or failed.
Candidate and CURRENT are both scored through onnxruntime (the served graph) on the *same* holdout
rows: the newest time slice of the retrain window, which neither model trained on.

    parity        torch vs onnxruntime on holdout rows encoded by the manifest's own encoders
    finite        no NaN/Inf in any head on the holdout
    tasks         the candidate still has every head CURRENT has (weight profiles name them)
    metric        AUC (binary) not lower than CURRENT's by more than auc_tolerance;
                  RMSE (regression; of log1p for log1p-trained heads) not higher than CURRENT's
                  by more than rmse_tolerance (relative)
    mean_shift    |mean(candidate) - mean(CURRENT)| per head, in units of the head's label std
                  on the holdout (log1p space for log1p-trained heads)
    quantile_shift largest |quantile shift| over p05..p95 per head, same units
    topk_overlap  mean share of CURRENT's top-k kept by the candidate on sampled requests
    floor         first model only (no CURRENT): AUC >= min_auc, RMSE / RMSE(mean) <= max_rmse_ratio

Thresholds live in the spec's `gates:` section (training/spec.py, GatesConfig).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from service.contract.parity import PARITY_ATOL, PARITY_RTOL, compare
from training.metrics import auc, rmse
from training.spec import RankerSpec

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
STD_FLOOR = 1e-6  # a constant head has no spread to measure shifts in


@dataclass(frozen=True)
class GateResult:
    """One gate on one subject (a head, or "model")."""

    gate: str
    subject: str
    value: float | None
    threshold: float
    op: Literal[">=", "<="]
    passed: bool
    detail: str = ""

    @property
    def margin(self) -> float | None:
        """Headroom above the threshold (> 0) or the amount it failed by (< 0)."""
        if self.value is None:
            return None
        return self.value - self.threshold if self.op == ">=" else self.threshold - self.value

    def to_dict(self) -> dict:
        return {**asdict(self), "margin": self.margin}


def check(gate: str, subject: str, value: float | None, op: Literal[">=", "<="], threshold: float,
          detail: str = "") -> GateResult:
    """A gate result; a missing or non-finite value fails."""
    ok = value is not None and bool(np.isfinite(value))
    if ok:
        ok = value >= threshold if op == ">=" else value <= threshold
    return GateResult(gate, subject, None if value is None else float(value), float(threshold), op, bool(ok), detail)


@dataclass(frozen=True)
class Scored:
    """One model's natural-unit outputs on the holdout.

    Args:
        preds: (N, T) outputs, columns in `tasks` order.
        tasks: head names.
    """

    preds: np.ndarray
    tasks: list[str]

    def head(self, name: str) -> np.ndarray:
        return self.preds[:, self.tasks.index(name)]


def parity_gate(onnx: np.ndarray, torch_out: np.ndarray) -> GateResult:
    """Worst |onnx - torch| / (atol + rtol * |torch|) over all heads and rows; must be <= 1."""
    result = compare(onnx, torch_out)
    worst = result.worst_ratio if onnx.size else float("nan")
    return check("parity", "model", worst, "<=", 1.0, f"max abs(onnx - torch) = {result.max_abs_diff:.3g} "
                 f"on {len(onnx)} rows (bound {PARITY_ATOL} + {PARITY_RTOL} * |torch|)")


def finite_gates(cand: Scored) -> list[GateResult]:
    return [check("finite", t, float((~np.isfinite(cand.head(t))).sum()), "<=", 0.0,
                  f"non-finite outputs among {len(cand.preds)} holdout rows") for t in cand.tasks]


def tasks_gate(cand: Scored, base: Scored) -> GateResult:
    missing = [t for t in base.tasks if t not in cand.tasks]
    return check("tasks", "model", float(len(missing)), "<=", 0.0,
                 f"heads CURRENT has and the candidate lacks: {missing}" if missing else "all CURRENT heads present")


def task_metric(spec: RankerSpec, task: str, labels: np.ndarray, scores: np.ndarray) -> float | None:
    """AUC for binary tasks, RMSE for regression, on observed labels only.

    A log1p-trained head (e.g. watch time in seconds) is measured in log1p space, where it was fit:
    in label units a few huge labels decide the RMSE, and a model of the conditional log predicts
    below the mean, so even a good head can lose to the constant mean there.
    """
    t = next(t for t in spec.tasks if t.name == task)
    if t.type == "binary":
        return auc(labels, scores)
    if t.label_transform == "log1p":
        return rmse(np.log1p(labels), np.log1p(np.clip(scores, 0, None)))
    return rmse(labels, scores)


def metric_name(spec: RankerSpec, task: str) -> str:
    t = next(t for t in spec.tasks if t.name == task)
    return "AUC" if t.type == "binary" else ("RMSE(log1p)" if t.label_transform == "log1p" else "RMSE")


def metric_gates(spec: RankerSpec, labels: np.ndarray, cand: Scored, base: Scored) -> list[GateResult]:
    """Per task: candidate vs CURRENT on the same rows. labels: (N, T) in spec task order, NaN = unseen.

    A head CURRENT lacks, or whose CURRENT metric is undefined here, gets its absolute floor instead.
    """
    cfg, out = spec.gates, []
    for j, t in enumerate(spec.tasks):
        y = labels[:, j]
        b = task_metric(spec, t.name, y, base.head(t.name)) if t.name in base.tasks else None
        if b is None:
            out.append(floor_gate(spec, t.name, y, cand.head(t.name)))
            continue
        c = task_metric(spec, t.name, y, cand.head(t.name))
        observed = int((~np.isnan(y)).sum())
        if t.type == "binary":
            out.append(check("metric", t.name, c, ">=", b - cfg.auc_tolerance,
                             f"AUC {_fmt(c)} vs CURRENT {b:.4f} on {observed} labels (tolerance {cfg.auc_tolerance})"))
        else:
            out.append(check("metric", t.name, c, "<=", b * (1 + cfg.rmse_tolerance),
                             f"{metric_name(spec, t.name)} {_fmt(c)} vs CURRENT {b:.4g} on {observed} labels "
                             f"(tolerance +{cfg.rmse_tolerance:.0%})"))
    return out


def floor_gate(spec: RankerSpec, task: str, labels: np.ndarray, scores: np.ndarray) -> GateResult:
    """Absolute floor of one head: AUC >= min_auc, or RMSE / RMSE(predicting the mean) <= max_rmse_ratio."""
    cfg = spec.gates
    value = task_metric(spec, task, labels, scores)
    if next(t.type for t in spec.tasks if t.name == task) == "binary":
        return check("floor", task, value, ">=", cfg.min_auc, f"AUC {_fmt(value)}")
    seen = labels[~np.isnan(labels)]
    if metric_name(spec, task) == "RMSE(log1p)":
        seen = np.log1p(seen)
    naive = float(np.std(seen)) if seen.size else None  # the RMSE of always predicting the mean
    ratio = value / naive if value is not None and naive else None
    return check("floor", task, ratio, "<=", cfg.max_rmse_ratio,
                 f"{metric_name(spec, task)} {_fmt(value)} vs {_fmt(naive)} for predicting the mean")


def shift_scale(spec: RankerSpec, task: str, labels: np.ndarray, base: np.ndarray) -> tuple[float, str]:
    """The unit of a head's score shifts: the spread of its observed labels on the holdout.

    The target's spread, not CURRENT's score spread: an underfit CURRENT has compressed scores, and
    a sharper candidate must not fail for spreading out. Falls back to CURRENT's score std when
    fewer than 10 labels were observed.
    """
    seen = labels[~np.isnan(labels)]
    if metric_name(spec, task) == "RMSE(log1p)":
        seen = np.log1p(seen)
    if seen.size >= 10 and float(np.std(seen)) > STD_FLOOR:
        return float(np.std(seen)), "label std"
    return max(float(np.std(base)), STD_FLOOR), "CURRENT score std"


def shift_gates(spec: RankerSpec, labels: np.ndarray, cand: Scored, base: Scored) -> list[GateResult]:
    """Per common head: mean and p05..p95 shift of the candidate's scores vs CURRENT's, in label std.

    log1p-trained heads are compared in log1p space, as their metric is.
    """
    cfg, out = spec.gates, []
    for j, t in enumerate(spec.tasks):
        if t.name not in base.tasks:
            continue
        c, b = cand.head(t.name).astype(np.float64), base.head(t.name).astype(np.float64)
        if metric_name(spec, t.name) == "RMSE(log1p)":
            c, b = np.log1p(np.clip(c, 0, None)), np.log1p(np.clip(b, 0, None))
        scale, unit = shift_scale(spec, t.name, labels[:, j], b)
        qc, qb = np.quantile(c, QUANTILES), np.quantile(b, QUANTILES)
        q_shift = np.abs(qc - qb) / scale
        worst = int(np.argmax(q_shift))
        out.append(check("mean_shift", t.name, abs(float(c.mean() - b.mean())) / scale, "<=", cfg.max_mean_shift,
                         f"mean {c.mean():.4g} vs CURRENT {b.mean():.4g} ({unit} {scale:.4g})"))
        out.append(check("quantile_shift", t.name, float(q_shift[worst]), "<=", cfg.max_quantile_shift,
                         f"p{int(QUANTILES[worst] * 100):02d} {qc[worst]:.4g} vs CURRENT {qb[worst]:.4g} "
                         f"({unit} {scale:.4g})"))
    return out


def ranking_score(spec: RankerSpec, scored: Scored) -> np.ndarray:
    """(N,) the spec's evaluation score: sum of score_weights x heads."""
    score = np.zeros(len(scored.preds))
    for t, w in spec.score_weights().items():
        score += w * scored.head(t)
    return score


def topk_overlap_gate(spec: RankerSpec, request: np.ndarray, cand: Scored, base: Scored) -> GateResult:
    """Mean |top-k(candidate) & top-k(CURRENT)| / k over sampled holdout requests (grouped by value)."""
    cfg = spec.gates
    weights = spec.score_weights()
    missing = [t for t in weights if t not in base.tasks]
    if missing:
        return check("topk_overlap", "model", None, ">=", cfg.min_topk_overlap,
                     f"CURRENT lacks head(s) {missing} of the ranking score")
    order = np.argsort(request, kind="stable")  # the rows of each request side by side
    request, cs, bs = request[order], ranking_score(spec, cand)[order], ranking_score(spec, base)[order]
    starts = np.flatnonzero(np.r_[True, request[1:] != request[:-1]])
    ends = np.r_[starts[1:], len(request)]
    rng = np.random.default_rng(0)
    pick = rng.choice(len(starts), size=min(cfg.topk_requests, len(starts)), replace=False)
    overlaps = []
    for i in pick:
        lo, hi = starts[i], ends[i]
        k = min(cfg.topk, hi - lo)
        top_c = set(np.argsort(-cs[lo:hi], kind="stable")[:k])
        top_b = set(np.argsort(-bs[lo:hi], kind="stable")[:k])
        overlaps.append(len(top_c & top_b) / k)
    value = float(np.mean(overlaps)) if overlaps else None
    return check("topk_overlap", "model", value, ">=", cfg.min_topk_overlap,
                 f"top-{cfg.topk} by {weights} on {len(overlaps)} requests")


def run_gates(spec: RankerSpec, labels: np.ndarray, request: np.ndarray | None, cand: Scored,
              base: Scored | None, parity: GateResult) -> list[GateResult]:
    """All gates for one candidate. base=None means there is no CURRENT (first model: floors);
    request=None (no data.request_id) means there are no requests to compare top-k lists in."""
    results = [parity, *finite_gates(cand)]
    if base is None:
        return results + [floor_gate(spec, t.name, labels[:, j], cand.head(t.name)) for j, t in enumerate(spec.tasks)]
    results += [tasks_gate(cand, base), *metric_gates(spec, labels, cand, base)]
    results += shift_gates(spec, labels, cand, base)
    if request is not None:
        results.append(topk_overlap_gate(spec, request, cand, base))
    return results


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
