"""The training distribution of each feature, recorded in the manifest so `ranker monitor drift` can compare
what a model is served with what it was trained on (training/monitor/).

Numeric: interior bin edges (quantiles of the training values) and the share of training rows in each bin;
categorical: the share of each of the most frequent vocabulary values, the rest of the vocabulary summed in
`other`. Shares are of all rows; `missing` is the share without a value, `oov` (categorical) the share whose
value is not in the vocabulary. A bundle from before it was recorded has none (Manifest field None).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field, model_validator

SHARE_TOLERANCE = 1e-3  # shares are rounded to 6 digits when stored


class NumericDistribution(BaseModel):
    """Bin i holds values x with edges[i-1] <= x < edges[i] (bin 0: below edges[0]; the last: from edges[-1])."""

    edges: list[float]  # ascending, unique
    shares: list[float]  # len(edges) + 1, of all rows
    missing: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> NumericDistribution:
        if len(self.shares) != len(self.edges) + 1 or bool(np.any(np.diff(self.edges) <= 0)):
            raise ValueError("numeric distribution: edges must be ascending and unique, with one share more")
        _check_total(sum(self.shares) + self.missing)
        return self

    def bins(self, values: np.ndarray) -> np.ndarray:
        return bin_counts(np.asarray(self.edges), values)

    def expected(self) -> np.ndarray:
        return np.array([*self.shares, self.missing])


class CategoricalDistribution(BaseModel):
    """`shares`: vocabulary value -> share of rows, for the most frequent values (capped at export)."""

    shares: dict[str, float]
    other: float = Field(ge=0, le=1)  # the vocabulary values not in `shares`
    oov: float = Field(ge=0, le=1)
    missing: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> CategoricalDistribution:
        _check_total(sum(self.shares.values()) + self.other + self.oov + self.missing)
        return self

    def expected(self) -> np.ndarray:
        """Shares in the order `CategoricalDistribution.bins` counts: values, other, OOV, missing."""
        return np.array([*self.shares.values(), self.other, self.oov, self.missing])


class TrainingDistribution(BaseModel):
    """Per feature name, its training distribution; `rows` is how many training rows it was measured on."""

    rows: int = Field(gt=0)
    numeric: dict[str, NumericDistribution] = Field(default_factory=dict)
    categorical: dict[str, CategoricalDistribution] = Field(default_factory=dict)


def bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(N,) float64, NaN = missing -> (len(edges) + 2,) row counts: the bins, then missing."""
    present = values[~np.isnan(values)]
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return np.append(counts, len(values) - len(present))


def _check_total(total: float) -> None:
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise ValueError(f"distribution shares sum to {total}, not 1")
