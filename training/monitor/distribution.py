"""Feature values -> bin counts, for the manifest's training distribution (at export) and for the served rows
(`ranker monitor drift`): one binning both sides share, so a feature that did not move has a PSI near 0."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.contract.distribution import (
    CategoricalDistribution,
    NumericDistribution,
    TrainingDistribution,
    bin_counts,
)
from service.contract.features import OOV_INDEX, CategoricalEncoder, FeatureEncoders

SAMPLE_ROWS = 200_000  # training rows measured at export (the split's first rows)
NUMERIC_BINS = 10  # deciles; tied quantiles (integer or mostly-constant features) merge into fewer bins
TOP_VALUES = 1_000  # categorical values kept by name; the rest of the vocabulary is summed in `other`
_DIGITS = 6


def numeric_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(N,) float64 with NaN for missing."""
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def missing_mask(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(N,) bool: null, or NaN in a floating column (category_key's None)."""
    floating = pa.types.is_floating(column.type)
    return pc.is_null(column, nan_is_null=floating).to_numpy(zero_copy_only=False)


def vocabulary_rows(enc: CategoricalEncoder, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(N,) int64 embedding rows as the encoder gives them (0: OOV or missing)."""
    return enc.encode(column.to_pylist())


def categorical_bins(dist: CategoricalDistribution, enc: CategoricalEncoder, rows: np.ndarray,
                     missing: np.ndarray) -> np.ndarray:
    """Row counts in `dist.expected()` order: each named value, other, OOV, missing."""
    n = len(dist.shares)
    position = np.full(enc.cardinality, n, dtype=np.int64)  # other
    index = {v: i + 1 for i, v in enumerate(enc.vocab)}
    for k, value in enumerate(dist.shares):
        if value in index:
            position[index[value]] = k
    position[OOV_INDEX] = n + 1
    bins = np.where(missing, n + 2, position[rows])
    return np.bincount(bins, minlength=n + 3)


def describe(table: pa.Table, encoders: FeatureEncoders) -> TrainingDistribution:
    """The training distribution of every feature column of `table` (raw values, as the encoders read them)."""
    numeric = {f.name: _numeric(numeric_values(table.column(f.name))) for f in encoders.numeric}
    categorical = {f.name: _categorical(f, table.column(f.name)) for f in encoders.categorical}
    return TrainingDistribution(rows=table.num_rows, numeric=numeric, categorical=categorical)


def _numeric(x: np.ndarray) -> NumericDistribution:
    present = x[~np.isnan(x)]
    levels = np.arange(1, NUMERIC_BINS) / NUMERIC_BINS
    edges = np.unique(np.quantile(present, levels)) if len(present) else np.array([])
    edges = edges[edges > present.min()] if len(present) else edges  # no empty bin below the minimum
    shares = _round(bin_counts(edges, x) / len(x))
    return NumericDistribution(edges=edges.tolist(), shares=shares[:-1], missing=shares[-1])


def _categorical(enc: CategoricalEncoder, column: pa.ChunkedArray) -> CategoricalDistribution:
    rows, missing = vocabulary_rows(enc, column), missing_mask(column)
    counts = np.bincount(rows[~missing], minlength=enc.cardinality)
    oov, counts[OOV_INDEX] = counts[OOV_INDEX], 0
    top = [int(i) for i in np.argsort(-counts, kind="stable")[:TOP_VALUES] if counts[i] > 0]
    n = len(rows)
    shares = dict(zip([enc.vocab[i - 1] for i in top], _round(counts[top] / n), strict=True))
    return CategoricalDistribution(shares=shares, other=_round(np.array([counts.sum() - counts[top].sum()]) / n)[0],
                                   oov=round(oov / n, _DIGITS), missing=round(missing.sum() / n, _DIGITS))


def _round(shares: np.ndarray) -> list[float]:
    return [round(float(s), _DIGITS) for s in shares]
