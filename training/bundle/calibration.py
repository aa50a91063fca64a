"""Post-hoc calibration of the heads, fitted on the validation split; its evidence for report.md.

    binary heads      spec `calibration.binary`: none | platt (logistic regression on the logit) |
                      isotonic (scikit-learn's IsotonicRegression), fitted on observed validation labels
    log1p regression  spec `calibration.smearing` (default on): Duan's smearing factor
                      mean(exp(log1p(y) - log1p(pred))) on observed validation labels, so the served
                      value estimates the mean instead of the median

The fitted maps go into the manifest (service/contract/calibration.py), where `LoadedBundle.predict`
applies them. ECE (expected calibration error, 15 equal-width bins) is reported for every binary
head before and after, on the test split, with a reliability plot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from service.contract.bundle import TaskInfo
from service.contract.calibration import PROB_EPS, Isotonic, Platt, Smearing, calibrate
from training.spec import RankerSpec, TaskConfig

ECE_BINS = 15
# Fewer observed validation labels than this: the head is left uncalibrated. A map fitted on a few
# hundred labels is noise (on 20k demo rows, like's ~280 labels gave Platt a worse test ECE, 0.077 -> 0.090).
MIN_BINARY_LABELS = 1000
MIN_LOG1P_LABELS = 100
RELIABILITY_FILE = "reliability.png"

Fitted = Platt | Isotonic | Smearing


def fit_calibrations(spec: RankerSpec, preds: np.ndarray, raw_labels: np.ndarray) -> dict[str, Fitted]:
    """task -> calibration fitted on validation. preds, raw_labels: (N, T) in spec task order, NaN = unseen."""
    out: dict[str, Fitted] = {}
    for j, task in enumerate(spec.tasks):
        y, p = raw_labels[:, j], preds[:, j].astype(np.float64)
        seen = ~np.isnan(y)
        if seen.sum() < (MIN_BINARY_LABELS if task.type == "binary" else MIN_LOG1P_LABELS):
            continue
        fitted = _fit_one(spec, task, y[seen], p[seen])
        if fitted is not None:
            out[task.name] = fitted
    return out


def _fit_one(spec: RankerSpec, task: TaskConfig, y: np.ndarray, p: np.ndarray) -> Fitted | None:
    method = spec.calibration.binary
    if task.type == "binary" and method != "none" and 0 < y.mean() < 1:
        fitted = fit_platt(y, p) if method == "platt" else fit_isotonic(y, p)
        # A Platt slope <= 0 would reverse or flatten the head's order (a head no better than chance on
        # validation): leave such a head uncalibrated rather than serve a map that ranks it backwards.
        return None if isinstance(fitted, Platt) and fitted.a <= 0 else fitted
    if task.type == "regression" and task.label_transform == "log1p" and spec.calibration.smearing:
        return Smearing(factor=float(np.mean(np.exp(np.log1p(y) - np.log1p(np.maximum(p, 0.0))))))
    return None


def fit_platt(y: np.ndarray, p: np.ndarray) -> Platt:
    """sigmoid(a * logit(p) + b) fitted by (practically unregularized) logistic regression."""
    q = np.clip(p, PROB_EPS, 1 - PROB_EPS)
    lr = LogisticRegression(C=1e6).fit(np.log(q / (1 - q))[:, None], y.astype(int))
    return Platt(a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def fit_isotonic(y: np.ndarray, p: np.ndarray) -> Isotonic:
    """The isotonic regression's interpolation knots (flat outside the validation range)."""
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    x, v = iso.X_thresholds_.astype(float), iso.y_thresholds_.astype(float)
    if len(x) < 2:  # a constant fit: two knots that say so
        x, v = np.array([0.0, 1.0]), np.repeat(v[:1] if len(v) else [float(y.mean())], 2)
    return Isotonic(x=x.tolist(), y=np.clip(v, 0.0, 1.0).tolist())


def calibrate_columns(tasks: list[TaskInfo], preds: np.ndarray) -> np.ndarray:
    """(N, T) raw head outputs in `tasks` order -> calibrated, as `LoadedBundle.predict` serves them."""
    return np.stack([calibrate(t.calibration, preds[:, j].astype(np.float32)) for j, t in enumerate(tasks)], axis=1)


def reliability(labels: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> tuple[np.ndarray, ...]:
    """Per equal-width bin over [0, 1]: (mean predicted, observed rate, rows); observed labels only."""
    seen = ~np.isnan(labels)
    y, p = labels[seen], np.clip(probs[seen].astype(np.float64), 0.0, 1.0)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    count = np.bincount(idx, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=p, minlength=bins) / count
        rate = np.bincount(idx, weights=y, minlength=bins) / count
    return conf, rate, count


def ece(labels: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float | None:
    """Expected calibration error: sum over bins of (rows / N) * |observed rate - mean predicted|."""
    conf, rate, count = reliability(labels, probs, bins)
    if count.sum() == 0:
        return None
    used = count > 0
    return float(np.sum(count[used] / count.sum() * np.abs(rate[used] - conf[used])))


def calibration_summary(spec: RankerSpec, tasks: list[TaskInfo], raw: np.ndarray, labels: np.ndarray) -> dict:
    """Per head on the test split: ECE before/after (binary), mean label vs mean served value (log1p).

    raw: (N, T) uncalibrated outputs; labels: (N, T) raw labels, NaN = unseen; both in `tasks` order.
    """
    served = calibrate_columns(tasks, raw)
    out = {}
    for j, t in enumerate(tasks):
        kind = t.calibration.kind if t.calibration is not None else "none"
        y = labels[:, j]
        seen = ~np.isnan(y)
        if t.type == "binary":
            out[t.name] = {"method": kind, "ece_before": ece(y, raw[:, j]), "ece_after": ece(y, served[:, j]),
                           "observed": int(seen.sum())}
        elif t.label_transform == "log1p":
            out[t.name] = {"method": kind, "mean_label": float(y[seen].mean()) if seen.any() else None,
                           "mean_before": float(raw[seen, j].mean()) if seen.any() else None,
                           "mean_after": float(served[seen, j].mean()) if seen.any() else None,
                           "factor": getattr(t.calibration, "factor", None), "observed": int(seen.sum())}
    return out


def plot_reliability(path: Path, tasks: list[TaskInfo], raw: np.ndarray, labels: np.ndarray) -> Path | None:
    """Reliability diagram of every binary head (test split): observed rate against mean prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    binary = [(j, t) for j, t in enumerate(tasks) if t.type == "binary"]
    if not binary:
        return None
    served = calibrate_columns(tasks, raw)
    fig, axes = plt.subplots(1, len(binary), figsize=(4.0 * len(binary), 3.8), squeeze=False)
    for ax, (j, t) in zip(axes.flat, binary, strict=True):
        ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect")
        for values, name, style in ((raw[:, j], "model", "o-"), (served[:, j], "served", "s-")):
            if name == "served" and t.calibration is None:
                continue
            conf, rate, count = reliability(labels[:, j], values)
            used = count > 0
            ax.plot(conf[used], rate[used], style, ms=4,
                    label=f"{name} (ECE {ece(labels[:, j], values):.3f})")
        ax.set_title(f"{t.name} ({t.calibration.kind if t.calibration else 'uncalibrated'})")
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("observed rate")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def render_section(summary: dict) -> list[str]:
    """report.md lines: the calibration table and the reliability plot. summary: {"split", head: {...}}."""
    split = summary.get("split", "test")
    note = "" if split == "test" else (" Measured on the validation split, where the calibration was fitted: "
                                       "`ranker train --eval-test` measures it on held-out rows.")
    summary = {k: v for k, v in summary.items() if k != "split"}
    lines = [f"## Calibration ({split} split)", "",
             "Fitted on the validation split and applied by the server from the manifest. ECE: expected "
             f"calibration error over {ECE_BINS} equal-width bins, observed labels only.{note}", "",
             "| head | calibration | ECE before | ECE after | observed |", "|---|---|---|---|---|"]
    for name, s in summary.items():
        if "ece_before" in s:
            lines.append(f"| {name} | {s['method']} | {_f(s['ece_before'])} | {_f(s['ece_after'])} | {s['observed']:,} |")
    log_heads = {n: s for n, s in summary.items() if "mean_label" in s}
    if log_heads:
        lines += ["", "| log1p head | calibration | mean label | mean served before | after | factor |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {n} | {s['method']} | {_f(s['mean_label'])} | {_f(s['mean_before'])} | {_f(s['mean_after'])} | "
                  f"{_f(s['factor'])} |" for n, s in log_heads.items()]
    return lines + ["", f"![reliability]({RELIABILITY_FILE})", ""]


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"
