"""Drift of served rows against the manifest's training distribution: the population stability index (PSI)
per feature and per head, and the OOV, defaulted and clipped rates.

PSI = sum over bins of (a - e) * ln(a / e), with a and e the served and training shares of a bin (each at
least PSI_EPSILON, so an empty bin costs a finite amount). The usual rule of thumb: below 0.1 stable, 0.1 to
0.25 a moderate shift, above 0.25 a significant one. It grows with sampling noise too, by about
(bins - 1) / rows, so a few hundred rows of a 1,000-value feature read as drift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from service.contract.bundle import ScoreStats
from service.contract.distribution import CategoricalDistribution, NumericDistribution
from service.contract.features import OOV_INDEX, CategoricalEncoder, NumericEncoder
from training.monitor.distribution import categorical_bins, missing_mask, numeric_values, vocabulary_rows

PSI_EPSILON = 1e-4
OK, WARN, ALERT, UNJUDGED = "ok", "warn", "alert", "unjudged"


@dataclass(frozen=True)
class Thresholds:
    psi_warn: float = 0.1
    psi_alert: float = 0.25
    rate_alert: float = 0.05  # an OOV, defaulted or clipped share this far above the training share


@dataclass(frozen=True)
class Flags:
    """Per feature, the share of rows the server defaulted / clipped (from the impression log's lists)."""

    defaulted: float
    clipped: float


@dataclass
class Drift:
    """One feature's or head's verdict; rates are shares of the served rows (None: not applicable)."""

    name: str
    kind: str  # numeric | categorical | head
    rows: int
    status: str
    psi: float | None = None
    defaulted: float | None = None
    oov: float | None = None
    clipped: float | None = None
    train_defaulted: float | None = None
    train_oov: float | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two distributions over the same bins (shares or counts)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.sum() <= 0 or a.sum() <= 0:
        raise ValueError(f"psi needs two non-empty distributions over the same bins, got {e.shape} and {a.shape}")
    e = np.maximum(e / e.sum(), PSI_EPSILON)
    a = np.maximum(a / a.sum(), PSI_EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def head_bins(stats: ScoreStats) -> tuple[np.ndarray, np.ndarray]:
    """The bins a head's training quantiles (p01..p99) define: (edges, expected shares), tied quantiles merged
    (a value equal to an edge falls in the bin above it, so a zero-width bin's mass goes to the next one)."""
    levels = sorted((int(k[1:]) / 100, v) for k, v in stats.quantiles.items())
    if not levels:
        raise ValueError("no quantiles")
    shares = np.diff([0.0, *(q for q, _ in levels), 1.0])
    edges, out = [levels[0][1]], [shares[0]]
    pending = 0.0
    for j in range(1, len(levels)):
        if levels[j][1] <= edges[-1]:
            pending += shares[j]
            continue
        edges.append(levels[j][1])
        out.append(shares[j] + pending)
        pending = 0.0
    out.append(shares[-1] + pending)
    return np.array(edges), np.array(out)


def judge_head(name: str, stats: ScoreStats | None, values: np.ndarray, th: Thresholds) -> Drift:
    """Served scores of one head against the manifest's score_stats."""
    values = values[~np.isnan(values)]
    if stats is None or not stats.quantiles:
        return Drift(name, "head", len(values), UNJUDGED, note="the manifest has no score_stats for this head")
    if not len(values):
        return Drift(name, "head", 0, UNJUDGED, note="no served scores")
    edges, expected = head_bins(stats)
    value = psi(expected, np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(expected)))
    return Drift(name, "head", len(values), _status(value, th), psi=value,
                 note=f"mean {values.mean():.4g} (training {stats.mean:.4g})")


def judge_numeric(enc: NumericEncoder, dist: NumericDistribution | None, column: pa.ChunkedArray,
                  flags: Flags | None, th: Thresholds) -> Drift:
    """One numeric feature; without `flags` (plain rows) defaulted = missing, clipped = outside the range."""
    x = numeric_values(column)
    missing = float(np.isnan(x).mean()) if len(x) else 0.0
    if flags is None:
        outside = (x < enc.clip_min) | (x > enc.clip_max) if enc.clip_min is not None else np.zeros(len(x), bool)
        flags = Flags(defaulted=missing, clipped=float(outside.mean()) if len(x) else 0.0)
    d = Drift(enc.name, "numeric", len(x), UNJUDGED, defaulted=flags.defaulted, clipped=flags.clipped)
    return _judged(d, dist, lambda: psi(dist.expected(), dist.bins(x)), th)


def judge_categorical(enc: CategoricalEncoder, dist: CategoricalDistribution | None, column: pa.ChunkedArray,
                      flags: Flags | None, th: Thresholds) -> Drift:
    """One categorical feature: PSI over the recorded values, the rest of the vocabulary, OOV and missing."""
    rows, missing = vocabulary_rows(enc, column), missing_mask(column)
    n = max(len(rows), 1)
    oov = float(((rows == OOV_INDEX) & ~missing).sum() / n)
    defaulted = flags.defaulted if flags is not None else float(missing.sum() / n)
    d = Drift(enc.name, "categorical", len(rows), UNJUDGED, defaulted=defaulted, oov=oov)
    return _judged(d, dist, lambda: psi(dist.expected(), categorical_bins(dist, enc, rows, missing)), th)


def _judged(d: Drift, dist: NumericDistribution | CategoricalDistribution | None, measure, th: Thresholds) -> Drift:
    if dist is None:
        d.note = "no training distribution recorded"
        return d
    if d.rows == 0:
        d.note = "no rows"
        return d
    d.psi = measure()
    d.train_defaulted = dist.missing
    d.train_oov = getattr(dist, "oov", None)
    d.status = _status(d.psi, th)
    excess = [(label, rate - base) for label, rate, base in (
        ("defaulted", d.defaulted, d.train_defaulted), ("oov", d.oov, d.train_oov), ("clipped", d.clipped, 0.0))
        if rate is not None and base is not None and rate - base >= th.rate_alert]
    if excess:
        d.status = ALERT
        d.note = ", ".join(f"{label} +{up:.1%} over training" for label, up in excess)
    return d


def _status(value: float, th: Thresholds) -> str:
    return ALERT if value >= th.psi_alert else WARN if value >= th.psi_warn else OK
