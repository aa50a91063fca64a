"""Experiment statistics: means per arm with intervals from a bootstrap by user (cluster bootstrap).

A user, not a row, is the unit of an experiment: the split assigns users to arms, and one user's
impressions are correlated (a heavy clicker clicks in every request). Resampling rows would treat
a user's hundred impressions as a hundred independent draws and give intervals far too narrow
(bench/loop/experiment_stats.py shows how far). So every statistic is first reduced to per-user sums,
and users are resampled:

    rate or mean of a label   sum over users of the label sum / sum over users of the observed count
                              (the ratio of sums: every observed row weighs the same, as in the table)
    NDCG@k                    the mean over users of each user's mean NDCG over requests

One bootstrap replicate of an arm draws that arm's users with replacement (multinomial counts, the
exact nonparametric bootstrap), and every statistic of the arm is computed from the same draw:
`replicates` is one matrix product of the (B, U) counts with the (U, K) per-user sums. Arms are
independent samples of users, so the replicates of a difference pair replicate b of one arm with
replicate b of the other, each drawn on its own. Intervals are percentile intervals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import chisquare

CONFIDENCE = 0.95
RESAMPLES = 2000
SRM_ALPHA = 0.001  # a sample-ratio mismatch is reported loudly below this p-value
DRAWS_PER_CHUNK = 8_000_000  # bootstrap counts drawn at once (replicates x users): bounds the memory


@dataclass(frozen=True)
class Interval:
    """An estimate with its 95 % interval (lo, hi); None where it is undefined (nothing observed)."""

    value: float | None
    lo: float | None
    hi: float | None

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self, digits: int = 4, signed: bool = False) -> str:
        if self.value is None:
            return "n/a"
        fmt = f"{'+' if signed else ''}.{digits}f"
        if self.lo is None or self.hi is None:
            return format(self.value, fmt)
        return f"{self.value:{fmt}} [{self.lo:{fmt}}, {self.hi:{fmt}}]"


def user_sums(cluster: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster (sum, observed count) of one label over the rows where it is observed (not NaN).

    Args:
        cluster: (N,) dense cluster (user) index of each row, 0..U-1.
        values: (N,) float label, NaN = not observed.
    Returns:
        (U,) sums and (U,) counts.
    """
    seen = ~np.isnan(values)
    n = int(cluster.max(initial=-1)) + 1
    sums = np.bincount(cluster, weights=np.where(seen, values, 0.0), minlength=n)
    return sums, np.bincount(cluster, weights=seen.astype(np.float64), minlength=n)


def replicates(per_user: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, K) column sums of (U, K) per-user values over B bootstrap draws of the U users.

    Each replicate draws U users with replacement: multinomial counts, drawn as indices and counted
    with one bincount per chunk of replicates, so memory stays bounded at any user count.
    """
    users, width = per_user.shape
    out = np.empty((resamples, width))
    if users == 0:
        out.fill(0.0)
        return out
    chunk = max(1, DRAWS_PER_CHUNK // users)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        picks = rng.integers(0, users, size=(b, users)) + (np.arange(b) * users)[:, None]
        counts = np.bincount(picks.ravel(), minlength=b * users).reshape(b, users)  # (b, U)
        out[start:start + b] = counts @ per_user
    return out


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (a replicate that drew no observed row)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def percentile(point: float | None, draws: np.ndarray) -> Interval:
    """The point estimate with the percentile interval of its finite bootstrap draws."""
    if point is None or not np.isfinite(point):
        return Interval(None, None, None)
    finite = draws[np.isfinite(draws)]
    if finite.size < 2:
        return Interval(float(point), None, None)
    tail = (1 - CONFIDENCE) / 2 * 100
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return Interval(float(point), float(lo), float(hi))


@dataclass(frozen=True)
class Comparison:
    """An arm against control on one statistic: the difference, the relative lift and the verdict."""

    difference: Interval
    lift: Interval
    verdict: str

    def to_dict(self) -> dict:
        return {"difference": self.difference.to_dict(), "lift": self.lift.to_dict(), "verdict": self.verdict}


def verdict(difference: Interval, higher_is_better: bool = True) -> str:
    """'better' / 'worse' when the 95 % interval of the difference excludes 0, else 'no detectable difference'."""
    if difference.lo is None or difference.hi is None:
        return "no detectable difference" if difference.value is not None else "n/a"
    if difference.lo > 0 or difference.hi < 0:
        up = difference.lo > 0
        return "better" if up == higher_is_better else "worse"
    return "no detectable difference"


def compare(arm: float | None, arm_draws: np.ndarray, control: float | None, control_draws: np.ndarray,
            higher_is_better: bool = True) -> Comparison:
    """The arm minus control, and (arm - control) / control, from paired replicates of two independent arms."""
    if arm is None or control is None:
        empty = Interval(None, None, None)
        return Comparison(empty, empty, "n/a")
    diff = percentile(arm - control, arm_draws - control_draws)
    lift = percentile((arm - control) / control if control else None, ratio(arm_draws - control_draws, control_draws))
    return Comparison(diff, lift, verdict(diff, higher_is_better))


@dataclass(frozen=True)
class SampleRatio:
    """The sample-ratio-mismatch check: observed users per arm against the configured shares."""

    observed: dict[str, int]
    expected_share: dict[str, float]
    chi2: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA

    def to_dict(self) -> dict:
        return {**asdict(self), "mismatch": self.mismatch, "alpha": SRM_ALPHA}


def sample_ratio(observed: dict[str, int], expected_share: dict[str, float]) -> SampleRatio:
    """Chi-square goodness of fit of the observed counts per arm to the configured shares.

    The shares are renormalized over the arms given (an arm with share 0 must see no user: any user
    there is a mismatch, p = 0). Raises ValueError for an observed arm without a share.
    """
    if unknown := sorted(set(observed) - set(expected_share)):
        raise ValueError(f"arm {unknown[0]!r} is in the log but has no configured share "
                         f"(configured: {sorted(expected_share)})")
    arms = list(expected_share)
    counts = np.array([observed.get(a, 0) for a in arms], dtype=np.float64)
    shares = np.array([expected_share[a] for a in arms], dtype=np.float64)
    total = counts.sum()
    if total == 0 or shares.sum() <= 0:
        return SampleRatio({a: int(observed.get(a, 0)) for a in arms}, dict(expected_share), 0.0, 1.0)
    shares = shares / shares.sum()
    if np.any((shares == 0) & (counts > 0)):
        chi2, p = float("inf"), 0.0
    else:
        live = shares > 0
        result = chisquare(counts[live], f_exp=shares[live] * total)
        chi2, p = float(result.statistic), float(result.pvalue)
    return SampleRatio({a: int(c) for a, c in zip(arms, counts, strict=True)}, dict(expected_share), chi2, p)
