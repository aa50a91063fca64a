"""Promotion gates: may a freshly trained candidate replace the CURRENT model?

Every gate compares one number with one threshold and says by how much it passed or failed.
Candidate and CURRENT are both scored through onnxruntime (the served graph) on the *same* holdout
rows: the newest time slice of the retrain window, which neither model trained on.

    parity        torch vs onnxruntime on holdout rows encoded by the manifest's own encoders
    finite        no NaN/Inf in any head on the holdout
    tasks         the candidate still has every head CURRENT has (weight profiles name them)
    metric        AUC (binary) not lower than CURRENT's by more than auc_tolerance; a ranking head's
                  own NDCG@k not lower than CURRENT's by more than ndcg_tolerance;
                  RMSE (regression; of log1p for log1p-trained heads) not higher than CURRENT's
                  by more than rmse_tolerance (relative)
    mean_shift    |mean(candidate) - mean(CURRENT)| per head, in units of the head's label std
                  on the holdout (log1p space for log1p-trained heads)
    quantile_shift largest |quantile shift| over p05..p95 per head, same units
    weights       the weights file that will serve compiles against the candidate (else servers refuse it)
    topk_overlap  per served profile: mean share of CURRENT's top-k kept by the candidate on sampled requests
    ndcg          per served profile: NDCG@k (the spec's gain) not lower than CURRENT's by more than ndcg_tolerance
    floor         first model only (no CURRENT): AUC >= min_auc, RMSE / RMSE(mean) <= max_rmse_ratio

Thresholds live in the spec's `gates:` section (training/spec/schema.py, GatesConfig).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from service.contract.bundle import TaskInfo
from service.contract.calibration import Smearing
from service.contract.parity import PARITY_ATOL, PARITY_RTOL, compare
from service.profiles import CompiledWeights, Weights, WeightsError, compile_weights
from training.evaluation import ranking as R
from training.evaluation.constant import Constant
from training.evaluation.metrics import constant_metrics, head_metrics, ranking_quality
from training.evaluation.served import gains, score_weights_file
from training.fit.early_stopping import metric_name as primary_metric
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
    """One model's natural-unit (served) outputs on the holdout.

    Args:
        preds: (N, T) outputs, columns in `tasks` order.
        tasks: head names.
        infos: the model's manifest tasks (score statistics for the zscore / minmax transforms);
            None: the heads without statistics, enough for identity and log1p profiles.
    """

    preds: np.ndarray
    tasks: list[str]
    infos: list[TaskInfo] | None = None
    raw: np.ndarray | None = None  # (N, T) the graph's own outputs (before calibration), when known

    def head(self, name: str) -> np.ndarray:
        return self.preds[:, self.tasks.index(name)]

    def fitted(self, name: str) -> np.ndarray:
        """A head as the model fit it: the graph's own output, which every offline metric judges
        (training/evaluation/metrics.py); without `raw`, the served value with any smearing undone.

        Metric and floor gates measure log1p-trained heads in log1p space, where the graph's output
        (a median) is the fitted quantity; a smeared (mean) value is biased there by log(factor).
        """
        if self.raw is not None:
            return self.raw[:, self.tasks.index(name)]
        info = self.info(name)
        if info is not None and isinstance(info.calibration, Smearing):
            return info.calibration.invert(self.head(name))
        return self.head(name)

    def info(self, name: str) -> TaskInfo | None:
        return next((t for t in self.infos or [] if t.name == name), None)

    def constant(self, name: str) -> Constant | None:
        """The model's constant baseline for a head (its training split's mean label), when the manifest has it."""
        label = info.train_label if (info := self.info(name)) is not None else None
        return Constant(label.mean, label.mean_log1p) if label is not None else None

    def heads(self) -> dict[str, np.ndarray]:
        return {t: self.preds[:, j] for j, t in enumerate(self.tasks)}

    def compile(self, weights: Weights) -> CompiledWeights:
        """The weights compiled against this model, as a server would; raises WeightsError."""
        infos = self.infos or [TaskInfo(name=t, type="regression", group="engagement", output=t) for t in self.tasks]
        return compile_weights(weights, infos)


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
    """The head's own metric (training/evaluation/metrics.py head_metrics, the one definition): AUC for
    binary tasks, RMSE for regression, on observed labels only.

    A log1p-trained head (e.g. watch time in seconds) is measured in log1p space, where it was fit:
    in label units a few huge labels decide the RMSE, and a model of the conditional log predicts
    below the mean, so even a good head can lose to the constant mean there.
    """
    t = next(t for t in spec.tasks if t.name == task)
    return head_metrics(t, labels, scores)[primary_metric(t.type, t.label_transform)]


def metric_name(spec: RankerSpec, task: str) -> str:
    t = next(t for t in spec.tasks if t.name == task)
    return "AUC" if t.type == "binary" else ("RMSE(log1p)" if t.label_transform == "log1p" else "RMSE")


def metric_gates(spec: RankerSpec, labels: np.ndarray, cand: Scored, base: Scored) -> list[GateResult]:
    """Per task: candidate vs CURRENT on the same rows. labels: (N, T) in spec task order, NaN = unseen.

    A head CURRENT lacks, or whose CURRENT metric is undefined here, gets its absolute floor instead.
    """
    cfg, out = spec.gates, []
    for j, t in enumerate(spec.tasks):
        if t.listwise:
            continue  # ranking heads: ranking_gates
        y = labels[:, j]
        b = task_metric(spec, t.name, y, base.fitted(t.name)) if t.name in base.tasks else None
        if b is None:
            out.append(floor_gate(spec, t.name, y, cand.fitted(t.name), cand.constant(t.name)))
            continue
        c = task_metric(spec, t.name, y, cand.fitted(t.name))
        observed = int((~np.isnan(y)).sum())
        if t.type == "binary":
            out.append(check("metric", t.name, c, ">=", b - cfg.auc_tolerance,
                             f"AUC {_fmt(c)} vs CURRENT {b:.4f} on {observed} labels (tolerance {cfg.auc_tolerance})"))
        else:
            out.append(check("metric", t.name, c, "<=", b * (1 + cfg.rmse_tolerance),
                             f"{metric_name(spec, t.name)} {_fmt(c)} vs CURRENT {b:.4g} on {observed} labels "
                             f"(tolerance +{cfg.rmse_tolerance:.0%})"))
    return out


def ranking_gates(spec: RankerSpec, labels: np.ndarray, request: np.ndarray | None, cand: Scored,
                  base: Scored) -> list[GateResult]:
    """Per ranking head both models have: its own NDCG@k (its gain) not lower than CURRENT's by more than
    ndcg_tolerance. A ranking score has no units, so its distribution is not compared (shift gates skip it)."""
    out = []
    for j, t in enumerate(spec.tasks):
        if not t.listwise or t.name not in base.tasks or request is None:
            continue
        c, b = (ranking_quality(labels[:, j], m.head(t.name), request, spec.eval.ndcg_k)["ndcg"] for m in (cand, base))
        if b is None:
            continue
        out.append(check("metric", t.name, c, ">=", b - spec.gates.ndcg_tolerance,
                         f"NDCG@{spec.eval.ndcg_k} of the head {_fmt(c)} vs CURRENT {b:.4f} "
                         f"(tolerance {spec.gates.ndcg_tolerance})"))
    return out


def floor_gate(spec: RankerSpec, task: str, labels: np.ndarray, scores: np.ndarray,
               constant: Constant | None = None) -> GateResult:
    """Absolute floor of one head: AUC >= min_auc, or RMSE / RMSE(constant) <= max_rmse_ratio.

    The constant is the candidate's constant baseline (its training split's mean label, on the trained
    scale for log1p heads: training/evaluation/constant.py); without one, the holdout's own mean.
    """
    cfg = spec.gates
    t = next(t for t in spec.tasks if t.name == task)
    value = task_metric(spec, task, labels, scores)
    if t.type == "binary":
        return check("floor", task, value, ">=", cfg.min_auc, f"AUC {_fmt(value)}")
    constant = constant or Constant.of(t, labels)
    naive = constant_metrics(t, labels, constant)[primary_metric(t.type, t.label_transform)] if constant else None
    ratio = value / naive if value is not None and naive else None
    return check("floor", task, ratio, "<=", cfg.max_rmse_ratio,
                 f"{metric_name(spec, task)} {_fmt(value)} vs {_fmt(naive)} for predicting the training mean")


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
        if t.name not in base.tasks or t.listwise:
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


def profile_gates(spec: RankerSpec, weights: Weights, labels: np.ndarray, request: np.ndarray | None, cand: Scored,
                  base: Scored | None) -> list[GateResult]:
    """The served profiles on the holdout: the weights compile against the candidate (or the servers
    would refuse it); per profile, top-k overlap with CURRENT and NDCG@k no worse than CURRENT's.

    Scores are the server's (`CompiledProfile.combine` over each model's own score statistics);
    requests are grouped by request id value.
    """
    try:
        cw = cand.compile(weights)
    except WeightsError as e:
        return [check("weights", "model", None, "<=", 0.0, f"the servers would refuse this model: {e}")]
    results = [check("weights", "model", 0.0, "<=", 0.0,
                     f"profiles {weights.profile_names} compile against the candidate's heads")]
    if base is None or request is None:
        return results
    names = sorted(cw.profiles)
    try:
        bw = base.compile(weights)
    except WeightsError as e:
        return results + [check("topk_overlap", n, None, ">=", spec.gates.min_topk_overlap,
                                f"CURRENT cannot score this profile: {e}") for n in names]
    cfg, k = spec.gates, spec.eval.ndcg_k
    req = R.Requests.of(request)
    pick = np.random.default_rng(0).choice(len(req), size=min(cfg.topk_requests, len(req)), replace=False)
    gain = gains(spec, labels)
    for name in names:
        c, b = cw.profiles[name].combine(cand.heads()), bw.profiles[name].combine(base.heads())
        kept = R.overlap(req, c, b, cfg.topk)[pick]
        results.append(check("topk_overlap", name, float(kept.mean()) if kept.size else None, ">=",
                             cfg.min_topk_overlap, f"top-{cfg.topk} by profile {name!r} on {kept.size} requests"))
        nc, nb = R.ndcg(req, c, gain, k), R.ndcg(req, b, gain, k)
        seen = np.isfinite(nb)
        cv, bv = (float(nc[seen].mean()), float(nb[seen].mean())) if seen.any() else (None, float("nan"))
        results.append(check("ndcg", name, cv, ">=", bv - cfg.ndcg_tolerance,
                             f"NDCG@{k} {_fmt(cv)} vs CURRENT {bv:.4f} on {int(seen.sum())} requests with a positive "
                             f"gain (tolerance {cfg.ndcg_tolerance})"))
    return results


def run_gates(spec: RankerSpec, labels: np.ndarray, request: np.ndarray | None, cand: Scored,
              base: Scored | None, parity: GateResult, weights: Weights | None = None) -> list[GateResult]:
    """All gates for one candidate. base=None means there is no CURRENT (first model: floors);
    request=None (no data.request_id) means there are no requests to compare rankings in.

    `weights` is the file that will serve (default: `eval.score_weights` as one profile).
    """
    weights = weights if weights is not None else score_weights_file(spec)
    results = [parity, *finite_gates(cand)]
    if base is None:
        results += [floor_gate(spec, t.name, labels[:, j], cand.fitted(t.name), cand.constant(t.name))
                    for j, t in enumerate(spec.tasks) if not t.listwise]
        return results + profile_gates(spec, weights, labels, request, cand, None)
    results += [tasks_gate(cand, base), *metric_gates(spec, labels, cand, base),
                *ranking_gates(spec, labels, request, cand, base)]
    results += shift_gates(spec, labels, cand, base)
    return results + profile_gates(spec, weights, labels, request, cand, base)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
