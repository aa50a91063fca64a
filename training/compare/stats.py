"""Paired comparisons over seeds: the one copy of the statistics `ranker compare` and the benchmarks use.

A gain is always "better by how much" (positive = better) whatever the metric's direction: AUC up is better,
RMSE down is better. Two models are paired by seed (same data, split and seed, so most of the seed noise is
shared), and a verdict is drawn from the gains of the pairs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

HELPS, HURTS, NOISE, ONE_SEED = "helps", "hurts", "within noise", "one seed"


def mean_std(values: Iterable[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) of the values that are not None."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def gain(a: float | None, b: float | None, lower_is_better: bool) -> float | None:
    """a better than b by how much (positive = a better); None when either is missing."""
    if a is None or b is None:
        return None
    return (b - a) if lower_is_better else (a - b)


def paired_gains(model: Mapping[int, float | None], base: Mapping[int, float | None],
                 lower_is_better: bool) -> list[float]:
    """Per seed both have a value for (seed -> metric), the model's gain over the base, in seed order."""
    pairs = (gain(model[s], base[s], lower_is_better) for s in sorted(model) if s in base)
    return [g for g in pairs if g is not None]


@dataclass(frozen=True)
class Verdict:
    """The paired gains of one comparison: their mean and seed std, how many pairs, and the word.

    "helps" / "hurts" when the mean gain exceeds its standard deviation over seeds, else "within noise";
    "one seed" when there is a single pair (no spread to judge by); n = 0 leaves mean and std NaN.
    """

    word: str
    mean: float
    std: float
    n: int

    def text(self, digits: int = 4) -> str:
        if self.n == 0:
            return "n/a"
        return f"{self.word} ({self.mean:+.{digits}f} ± {self.std:.{digits}f})"


def verdict(gains: list[float]) -> Verdict:
    m, s = mean_std(gains)
    if len(gains) < 2:
        return Verdict(ONE_SEED if gains else "n/a", m, s, len(gains))
    word = HELPS if m > s else HURTS if -m > s else NOISE
    return Verdict(word, m, s, len(gains))


def sign_test(d: np.ndarray) -> float:
    """Exact two-sided sign-test p-value of paired changes d (zeros dropped): is the change one-directional?"""
    k, n = int((d > 0).sum()), int((d != 0).sum())
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2 ** n if n else 1.0
    return min(1.0, 2 * tail)
