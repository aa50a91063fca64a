"""Raw feature values -> model input arrays.

This is the only encoding code in the project: the trainer fits these encoders and encodes its
training data with them, the manifest stores them, and the server encodes requests with them. One
code path on both sides is what rules out training/serving skew.

Model inputs are two arrays:
  categorical: (B, C) int64, index 0 is the out-of-vocabulary / missing slot
  numeric:     (B, F) float32, clipped to the training range, then standardized after an optional log1p
               (the server counts the clipped values per feature: `ranker_features_clipped_total`)

Fields added after the first bundles (`on_missing`, `clip_min`/`clip_max`, `item_id_feature`) are
optional with the old behaviour as their default, so bundles already published still load.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

Source = Literal["user", "context", "item"]
OnMissing = Literal["default", "error"]
OOV_INDEX = 0
CATEGORICAL_INPUT = "categorical"
NUMERIC_INPUT = "numeric"


def category_key(value: Any) -> str | None:
    """Canonical string for a categorical value; None means missing.

    Matches pyarrow's cast-to-string (used when fitting vocabularies): ints as digits, integral
    floats without ".0", booleans as "true"/"false".
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    return str(value)


class _VocabularyIndex(dict):
    """Canonical string -> embedding row. A lookup that misses (any value that is not a known string:
    ints, floats, booleans, None, unknown strings) retries with `category_key(value)`, then falls back
    to OOV_INDEX, without adding the key: `map(index.__getitem__, values)` then runs in C for the
    strings it knows, which most request and training values are."""

    def __missing__(self, value: Any) -> int:
        key = category_key(value)
        return self.get(key, OOV_INDEX) if key is not None else OOV_INDEX


class CategoricalEncoder(BaseModel):
    """Maps a categorical value to an embedding row: vocab[i] -> i + 1, anything else -> 0."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["categorical"] = "categorical"
    name: str
    source: Source
    vocab: list[str]
    on_missing: OnMissing = "default"  # "error": a request without the value is refused (422)
    _index: _VocabularyIndex = PrivateAttr()

    @model_validator(mode="after")
    def _build_index(self) -> CategoricalEncoder:
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError(f"feature {self.name!r}: vocabulary has duplicate entries")
        self._index = _VocabularyIndex((v, i + 1) for i, v in enumerate(self.vocab))
        return self

    @property
    def cardinality(self) -> int:
        """Embedding rows needed, including the OOV slot."""
        return len(self.vocab) + 1

    def encode(self, values: Iterable[Any]) -> np.ndarray:
        """(N,) values -> (N,) int64 indices. Unknown and missing values map to OOV_INDEX."""
        return np.fromiter(map(self._index.__getitem__, values), dtype=np.int64)

    def encode_one(self, value: Any) -> int:
        """`encode` of one value (a user or context feature), without building an array."""
        return self._index[value]


class NumericEncoder(BaseModel):
    """x -> (f(clip(x)) - mean) / std with f = identity or log1p; missing -> fill_value (raw units).

    clip_min/clip_max (raw units) are the range of the training values; None (bundles from before
    the range was kept) means no clipping.
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["numeric"] = "numeric"
    name: str
    source: Source
    transform: Literal["none", "log1p"] = "none"
    mean: float = 0.0
    std: float = Field(1.0, gt=0)
    fill_value: float = 0.0
    clip_min: float | None = None
    clip_max: float | None = None
    on_missing: OnMissing = "default"  # "error": a request without the value is refused (422)

    @model_validator(mode="after")
    def _check_range(self) -> NumericEncoder:
        if (self.clip_min is None) != (self.clip_max is None):
            raise ValueError(f"feature {self.name!r}: clip_min and clip_max go together")
        if self.clip_min is not None and not self.clip_min <= self.clip_max:
            raise ValueError(f"feature {self.name!r}: clip_min {self.clip_min} > clip_max {self.clip_max}")
        return self

    def encode(self, values: Iterable[Any] | np.ndarray, clipped: dict[str, int] | None = None) -> np.ndarray:
        """(N,) raw numbers (None/NaN = missing) -> (N,) float32, always finite when clipped.

        clipped: when given, `clipped[name]` is increased by the values outside [clip_min, clip_max]
            (the server counts them per feature; the trainer passes nothing and pays nothing).
        """
        x = np.array(values, dtype=np.float64)  # None -> nan
        x[np.isnan(x)] = self.fill_value
        if self.clip_min is not None:  # within the training range, nothing below overflows float32
            inside = np.clip(x, self.clip_min, self.clip_max)
            if clipped is not None:  # the values clip changed: one comparison, no second pass over the inputs
                outside = np.count_nonzero(inside != x)
                if outside:
                    clipped[self.name] = clipped.get(self.name, 0) + outside
            return self._standardized(inside)
        # Unclipped (an old bundle), a huge value overflows float32 to inf; the server then refuses the
        # non-finite score it leads to (service.live.pipeline), so numpy need not warn about it here.
        with np.errstate(over="ignore"):
            return self._standardized(x)

    def _standardized(self, x: np.ndarray) -> np.ndarray:
        return ((self.apply_transform(x) - self.mean) / self.std).astype(np.float32)

    def encode_one(self, value: Any, clipped: dict[str, int] | None = None) -> np.float32:
        """`encode` of one value (a user or context feature): the same arithmetic, on one element."""
        if clipped is not None and self.clip_min is not None and value is not None and (
                value < self.clip_min or value > self.clip_max):  # NaN compares False: missing, not clipped
            clipped[self.name] = clipped.get(self.name, 0) + 1
        return self.encode([value])[0]

    def apply_transform(self, x: np.ndarray) -> np.ndarray:
        if self.transform == "log1p":
            return np.log1p(np.maximum(x, 0.0))
        return x


class FeatureEncoders(BaseModel):
    """All encoders of one model, in model-input column order."""

    model_config = ConfigDict(frozen=True)

    categorical: list[CategoricalEncoder]
    numeric: list[NumericEncoder]
    # The categorical item feature that a candidate's `item_id` feeds (the spec's data.item_id).
    item_id_feature: str | None = None

    @model_validator(mode="after")
    def _check(self) -> FeatureEncoders:
        names = [f.name for f in self.all()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature names must be unique, repeated: {dupes}")
        if not self.numeric:
            raise ValueError("a model needs at least one numeric feature")
        items = [f.name for f in self.categorical if f.source == "item"]
        if self.item_id_feature is not None and self.item_id_feature not in items:
            raise ValueError(f"item_id_feature {self.item_id_feature!r} is not a categorical item feature {items}")
        return self

    def all(self) -> list[CategoricalEncoder | NumericEncoder]:
        return [*self.categorical, *self.numeric]

    def by_source(self, source: Source) -> list[str]:
        return [f.name for f in self.all() if f.source == source]

    def encode_columns(self, columns: Mapping[str, Any], n_rows: int,
                       clipped: dict[str, int] | None = None) -> dict[str, np.ndarray]:
        """Encode named columns into the model's input arrays.

        Args:
            columns: feature name -> a sequence of n_rows values, or a scalar shared by every row
                (user and context features of a ranking request). Absent names are missing values.
            n_rows: B, the number of rows to produce.
            clipped: when given, numeric feature -> values clipped to the training range is added to
                (a shared value counts once).
        Returns:
            {"categorical": (B, C) int64, "numeric": (B, F) float32}
        """
        cat = np.empty((n_rows, len(self.categorical)), dtype=np.int64)
        for j, enc in enumerate(self.categorical):
            cat[:, j] = encode_column(enc, columns.get(enc.name), n_rows)
        num = np.empty((n_rows, len(self.numeric)), dtype=np.float32)
        for j, enc in enumerate(self.numeric):
            num[:, j] = encode_column(enc, columns.get(enc.name), n_rows, clipped)
        return {CATEGORICAL_INPUT: cat, NUMERIC_INPUT: num}

    def encode_request(self, user: Mapping[str, Any], context: Mapping[str, Any],
                       candidates: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """One ranking request, candidates as dicts -> model inputs with one row per candidate.

        User and context features are encoded once and broadcast; item features are read from each
        candidate. A feature that is absent (or null) is missing and gets its encoder's default.
        """
        columns = self.request_columns(user, context, self.candidate_columns(candidates), len(candidates))
        return self.encode_columns(columns, len(candidates))

    def candidate_columns(self, candidates: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
        """Candidates as dicts -> one list per item feature, one value per candidate (None = missing)."""
        return {name: [c.get(name) for c in candidates] for name in self.by_source("item")}

    def request_columns(self, user: Mapping[str, Any], context: Mapping[str, Any], items: Mapping[str, Any],
                        n_rows: int) -> dict[str, Any]:
        """A request's values by feature, as `encode_columns` takes them: one shared value for a user or
        context feature, the `items` column (one value per candidate: a list, or a float array the
        feature store filled) for an item feature; an item feature absent from `items` is missing."""
        columns: dict[str, Any] = {}
        for name in self.by_source("user"):
            columns[name] = _Scalar(user.get(name))
        for name in self.by_source("context"):
            columns[name] = _Scalar(context.get(name))
        for name in self.by_source("item"):
            columns[name] = items[name] if name in items else [None] * n_rows
        return columns


def missing_values(columns: Mapping[str, Any]) -> dict[str, int]:
    """{feature: missing (None) values} of `request_columns`; a shared value counts once. A column the
    feature store filled may be a float array, where NaN is missing."""
    return {name: int(v.value is None) if isinstance(v, _Scalar) else
            int(np.isnan(v).sum()) if isinstance(v, np.ndarray) else v.count(None) for name, v in columns.items()}


class _Scalar:
    """Marks one value shared by every row (encoded once, then broadcast)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


SharedValue = _Scalar  # for readers of `request_columns` (the impression log repeats it per logged row)


def encode_column(encoder: CategoricalEncoder | NumericEncoder, values: Any, n_rows: int,
                  clipped: dict[str, int] | None = None) -> np.ndarray | Any:
    """(n_rows,) encoded values of one feature from a list of values; or, from one shared value (_Scalar
    or None), that value encoded once, which an assignment into an input column broadcasts. A numeric
    feature adds its clipped values to `clipped` when that is given (NumericEncoder.encode)."""
    if values is None:
        return encoder.encode_one(None)
    count = (clipped,) if clipped is not None and isinstance(encoder, NumericEncoder) else ()
    if isinstance(values, _Scalar):
        return encoder.encode_one(values.value, *count)
    if len(values) != n_rows:
        raise ValueError(f"feature {encoder.name!r}: {len(values)} values for {n_rows} rows")
    return encoder.encode(values, *count)
