"""RowSample: the uniform row sample a streamed run fits `ple` bins on."""

from __future__ import annotations

import numpy as np

from training.streaming.fitting import RowSample, numeric_sample_rows


def _sampled(rows: np.ndarray, size: int, chunk: int) -> np.ndarray:
    sample = RowSample(size, seed=3)
    for start in range(0, len(rows), chunk):
        sample.add(rows[start:start + chunk])
    return sample.result()


def test_the_sample_depends_on_the_rows_not_on_the_batches() -> None:
    rows = np.arange(10_000, dtype=np.float64).reshape(-1, 2)
    kept = _sampled(rows, 300, 7)
    assert kept.shape == (300, 2)
    np.testing.assert_array_equal(kept, _sampled(rows, 300, 1_000))
    assert (np.diff(kept[:, 0]) > 0).all()  # distinct rows, in row order
    assert 0.3 < kept[:, 0].mean() / rows[:, 0].mean() < 1.7  # drawn from everywhere, not the first rows


def test_up_to_its_size_every_row_stays_in_order() -> None:
    rows = np.random.default_rng(0).normal(size=(250, 3))
    np.testing.assert_array_equal(_sampled(rows, 250, 40), rows)


def test_a_wide_table_samples_fewer_rows_to_bound_the_memory() -> None:
    assert numeric_sample_rows(5) == 200_000
    assert numeric_sample_rows(1_000) == 20_000  # 20 million values at most
