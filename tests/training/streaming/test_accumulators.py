"""Pass 1's merged statistics against numpy over all values at once (the in-memory fit's numbers)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from training.data.tables import vocabulary
from training.streaming.accumulators import ExactMedian, Moments, NumericStats, ValueCounts


def _batches(x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    return np.split(x, np.cumsum(sizes)[:-1])


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 1001])
def test_exact_median_equals_numpy_median(n: int) -> None:
    rng = np.random.default_rng(n)
    # Heavy ties, negatives, huge and tiny magnitudes: buckets by bit pattern must not lose order.
    x = np.concatenate([rng.integers(-5, 5, n // 2).astype(float), rng.lognormal(0, 8, n - n // 2) * rng.choice([-1, 1], n - n // 2)])
    rng.shuffle(x)
    parts = _batches(x, [max(1, n // 3)] * 3)
    m = ExactMedian()
    for p in parts:
        m.add(p)
    for p in parts:
        m.refine(p)
    assert m.result() == np.median(x)


def test_moments_merge_equals_numpy_mean_and_std() -> None:
    x = np.random.default_rng(1).normal(1e6, 3.0, 10_000)  # a large mean: the naive sum-of-squares fails here
    m = Moments()
    for p in _batches(x, [1, 999, 5000, 4000]):
        m.add(p)
    assert m.count == x.size
    assert m.mean == pytest.approx(x.mean(), rel=1e-12)
    assert m.std == pytest.approx(x.std(), rel=1e-9)


def test_numeric_stats_count_missing_at_the_median_and_inf_at_the_clip_bounds() -> None:
    x = np.array([1.0, np.nan, 3.0, np.inf, 10.0, -np.inf, 2.0])
    s = NumericStats("none")
    for p in _batches(x, [3, 4]):
        s.add(p, lambda v: v)
    for p in _batches(x, [3, 4]):
        s.refine(p)
    fill, lo, hi, mean, std = s.finish(lambda v: v)
    finite = x[np.isfinite(x)]
    encoded = np.clip(np.where(np.isnan(x), np.median(finite), x), finite.min(), finite.max())
    assert (fill, lo, hi) == (np.median(finite), 1.0, 10.0)
    assert (mean, std) == pytest.approx((encoded.mean(), encoded.std()), rel=1e-12)


def test_value_counts_give_the_in_memory_vocabulary() -> None:
    values = np.random.default_rng(2).zipf(1.5, 20_000).astype(str)
    vc = ValueCounts()
    for p in _batches(values, [7000, 7000, 6000]):
        vc.add(pa.array(p))
    got = vocabulary(*vc.result(), max_vocab=50, min_count=3)
    distinct, counts = np.unique(values, return_counts=True)
    assert got == vocabulary(distinct.tolist(), counts, max_vocab=50, min_count=3)
    assert len(got) == 50
