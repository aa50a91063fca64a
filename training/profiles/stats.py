"""Means over requests with bootstrap confidence intervals (scipy.stats.bootstrap, percentile method).

Requests are the unit of resampling: a logged request is one independent draw of traffic, its
candidates are not. Paired comparisons (profile B minus profile A on the same requests) bootstrap
the per-request difference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import bootstrap

CONFIDENCE = 0.95
RESAMPLES = 1000


@dataclass(frozen=True)
class Estimate:
    """A mean over requests and its confidence interval (lo, hi); n = requests it is defined on."""

    mean: float | None
    lo: float | None
    hi: float | None
    n: int

    def to_dict(self) -> dict:
        return asdict(self)

    def text(self, digits: int = 4) -> str:
        if self.mean is None:
            return "n/a"
        if self.lo is None or self.hi is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def estimate(per_request: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> Estimate:
    """Mean of the finite values of (R,) and its 95 % percentile-bootstrap interval (none when resamples=0)."""
    x = np.asarray(per_request, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Estimate(None, None, None, 0)
    mean = float(x.mean())
    if resamples <= 0 or x.size < 2 or np.all(x == x[0]):
        # A constant sample has a zero-width interval (scipy refuses the degenerate case).
        lo = hi = mean if resamples > 0 and x.size >= 2 else None
        return Estimate(mean, lo, hi, int(x.size))
    ci = bootstrap((x,), np.mean, n_resamples=resamples, confidence_level=CONFIDENCE, method="percentile",
                   vectorized=True, batch=max(1, 20_000_000 // (8 * x.size)), rng=np.random.default_rng(seed))
    return Estimate(mean, float(ci.confidence_interval.low), float(ci.confidence_interval.high), int(x.size))
