"""Parquet impression logs -> validated, time-split, encoded arrays.

Encoding goes through `service.contract.features` (the encoders the server uses); this module only reads
Parquet, checks it against the spec, fits the encoders' statistics on the training split and
prepares labels. Null labels stay missing: they become mask=False, never 0.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from service.contract.features import CategoricalEncoder, FeatureEncoders, NumericEncoder
from training.spec import DataConfig, RankerSpec, TaskConfig


class DataError(ValueError):
    """Data that does not fit the spec; the message names the column and the problem."""


# -- reading ---------------------------------------------------------------------------------------


def dataset(path: str) -> ds.Dataset:
    """A Parquet file, a directory (hive partitions allowed) or a glob pattern."""
    p = Path(path)
    if p.is_dir() or p.is_file():
        return ds.dataset(str(p), format="parquet", partitioning="hive")
    files = sorted(glob.glob(path, recursive=True))
    if not files:
        raise DataError(f"data.path {path!r}: no Parquet file, directory or glob match")
    return ds.dataset(files, format="parquet")


def required_columns(spec: RankerSpec) -> list[str]:
    cols = [spec.data.timestamp, spec.data.request_id, spec.data.item_id]
    cols += [f.name for f in (*spec.features.categorical, *spec.features.numeric)]
    cols += [t.column for t in spec.tasks]
    return list(dict.fromkeys(cols))


def load_table(spec: RankerSpec) -> pa.Table:
    """Read the spec's columns, restricted to its [start, end) window; validates before returning."""
    data = dataset(spec.data.path)
    names = set(data.schema.names)
    missing = [c for c in required_columns(spec) if c not in names]
    if missing:
        raise DataError(f"{spec.data.path}: missing column(s) {missing}; the data has {sorted(names)}")
    table = data.to_table(columns=required_columns(spec), filter=_window_filter(data.schema, spec.data))
    validate(table, spec)
    return table


def _window_filter(schema: pa.Schema, cfg: DataConfig) -> ds.Expression | None:
    ts_type = schema.field(cfg.timestamp).type
    if not pa.types.is_timestamp(ts_type):
        raise DataError(f"column {cfg.timestamp!r}: the timestamp column must be a timestamp, not {ts_type}")
    expr = None
    for bound, op in ((cfg.start, "ge"), (cfg.end, "lt")):
        if bound is None:
            continue
        value = pa.scalar(_parse_time(bound, ts_type.tz), type=ts_type)
        term = ds.field(cfg.timestamp) >= value if op == "ge" else ds.field(cfg.timestamp) < value
        expr = term if expr is None else expr & term
    return expr


def _parse_time(text: str, tz: str | None) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError as e:
        raise DataError(f"data window bound {text!r} is not an ISO date/time") from e
    if tz is not None and t.tzinfo is None:
        t = t.replace(tzinfo=UTC)  # naive bounds are UTC
    return t


# -- validation ------------------------------------------------------------------------------------


def validate(table: pa.Table, spec: RankerSpec) -> None:
    """Raise DataError naming the first column that does not fit the spec."""
    if table.num_rows == 0:
        window = f" in [{spec.data.start}, {spec.data.end})" if spec.data.start or spec.data.end else ""
        raise DataError(f"{spec.data.path}: no rows{window}")
    for f in spec.features.categorical:
        t = table.schema.field(f.name).type
        if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
                or pa.types.is_boolean(t) or pa.types.is_dictionary(t)):
            raise DataError(f"column {f.name!r}: categorical features must be string, integer or boolean, not {t}")
    for f in spec.features.numeric:
        col = table.column(f.name)
        _require_numeric(f.name, col.type, "numeric feature")
        if pc.sum(pc.is_finite(col.cast(pa.float64()))).as_py() in (None, 0):
            raise DataError(f"column {f.name!r}: numeric feature has no finite values (all null, NaN or inf)")
    for task in spec.tasks:
        _validate_label(table.column(task.column), task)


def _require_numeric(name: str, t: pa.DataType, what: str) -> None:
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        raise DataError(f"column {name!r}: {what} must be numeric or boolean, not {t}")


def _validate_label(col: pa.ChunkedArray, task: TaskConfig) -> None:
    _require_numeric(task.column, col.type, f"label of task {task.name!r}")
    values = col.cast(pa.float64())
    if values.null_count == len(values):
        raise DataError(f"column {task.column!r}: task {task.name!r} has no labels at all (every value is null)")
    if pc.any(pc.invert(pc.is_finite(values))).as_py():
        raise DataError(f"column {task.column!r}: label of task {task.name!r} has NaN or inf values")
    if task.type == "binary" and not pc.all(pc.is_in(values.drop_null(), pa.array([0.0, 1.0]))).as_py():
        raise DataError(f"column {task.column!r}: binary task {task.name!r} has labels other than 0/1")
    if task.label_transform == "log1p" and pc.any(pc.less(values, 0)).as_py():
        raise DataError(f"column {task.column!r}: task {task.name!r} uses log1p but has negative labels")


# -- split -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Splits:
    train: pa.Table
    valid: pa.Table
    test: pa.Table


def sort_by_time(table: pa.Table, cfg: DataConfig) -> pa.Table:
    """Rows by (timestamp, request id): the rows of a request become contiguous."""
    order = pc.sort_indices(table, sort_keys=[(cfg.timestamp, "ascending"), (cfg.request_id, "ascending")])
    return table.take(order)


def split_by_time(table: pa.Table, cfg: DataConfig) -> Splits:
    """Oldest rows train, then valid, then test; a request never straddles two splits."""
    table = sort_by_time(table, cfg)
    req = table.column(cfg.request_id).to_numpy()
    n = len(req)
    starts = np.flatnonzero(np.r_[True, req[1:] != req[:-1]])  # first row of each request
    train_frac = 1.0 - cfg.valid_fraction - cfg.test_fraction
    cuts = [starts[min(np.searchsorted(starts, int(n * f)), len(starts) - 1)] for f in
            (train_frac, train_frac + cfg.valid_fraction)]
    a, b = cuts
    if not (0 < a < b < n):
        raise DataError(f"{n} rows in {len(starts)} requests are too few for a train/valid/test split")
    return Splits(table.slice(0, a), table.slice(a, b - a), table.slice(b))


# -- encoders and labels ---------------------------------------------------------------------------


def fit_encoders(train: pa.Table, spec: RankerSpec) -> FeatureEncoders:
    """Vocabularies and normalization statistics from the training split only."""
    categorical = [
        CategoricalEncoder(name=f.name, source=f.source,
                           vocab=_vocabulary(train.column(f.name), f.max_vocab, f.min_count))
        for f in spec.features.categorical
    ]
    numeric = [_fit_numeric(train.column(f.name), f.name, f.source, f.transform) for f in spec.features.numeric]
    return FeatureEncoders(categorical=categorical, numeric=numeric)


def _as_strings(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.cast(pa.string())


def _vocabulary(col: pa.ChunkedArray, max_vocab: int, min_count: int) -> list[str]:
    counts = pc.value_counts(_as_strings(col).drop_null())
    values, freq = counts.field("values").to_pylist(), counts.field("counts").to_numpy()
    # Most frequent first; ties broken by value so the vocabulary is deterministic.
    order = sorted(range(len(values)), key=lambda i: (-freq[i], values[i]))
    return [values[i] for i in order[:max_vocab] if freq[i] >= min_count]


def _fit_numeric(col: pa.ChunkedArray, name: str, source: str, transform: str) -> NumericEncoder:
    x = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    finite = x[np.isfinite(x)]
    fill = float(np.median(finite))
    probe = NumericEncoder(name=name, source=source, transform=transform, fill_value=fill)
    z = probe.apply_transform(np.where(np.isfinite(x), x, fill))
    std = float(z.std())
    return probe.model_copy(update={"mean": float(z.mean()), "std": std if std > 1e-12 else 1.0})


@dataclass(frozen=True)
class LabelScaler:
    """Regression labels are trained as (f(y) - mean) / std; export inverts this inside the graph."""

    transform: str = "none"
    mean: float = 0.0
    std: float = 1.0

    def forward(self, y: np.ndarray) -> np.ndarray:
        z = np.log1p(y) if self.transform == "log1p" else y
        return (z - self.mean) / self.std

    @classmethod
    def fit(cls, y: np.ndarray, transform: str) -> LabelScaler:
        z = np.log1p(y) if transform == "log1p" else y
        z = z[np.isfinite(z)]
        std = float(z.std()) if z.size else 1.0
        return cls(transform, float(z.mean()) if z.size else 0.0, std if std > 1e-12 else 1.0)


def fit_label_scalers(train: pa.Table, spec: RankerSpec) -> dict[str, LabelScaler]:
    return {
        t.name: LabelScaler.fit(_label(train, t), t.label_transform)
        for t in spec.tasks if t.type == "regression"
    }


def _label(table: pa.Table, task: TaskConfig) -> np.ndarray:
    return table.column(task.column).cast(pa.float64()).to_numpy(zero_copy_only=False)  # null -> nan


# -- encoded arrays --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """One split as arrays. Rows of a request are contiguous.

    categorical (N, C) int64; numeric (N, F) float32;
    labels (N, T) float32, training targets (regression already scaled), 0 where missing;
    raw_labels (N, T) float64 in label units, NaN where missing; mask (N, T) bool, True = observed;
    request (N,) int64 dense request index.
    """

    categorical: np.ndarray
    numeric: np.ndarray
    labels: np.ndarray
    raw_labels: np.ndarray
    mask: np.ndarray
    request: np.ndarray

    def __len__(self) -> int:
        return len(self.request)


def feature_inputs(table: pa.Table, encoders: FeatureEncoders) -> dict[str, np.ndarray]:
    """Model inputs for every row of a table, through the serving encoders."""
    columns = {}
    for f in encoders.categorical:
        columns[f.name] = _as_strings(table.column(f.name)).to_numpy(zero_copy_only=False)
    for f in encoders.numeric:
        columns[f.name] = table.column(f.name).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return encoders.encode_columns(columns, table.num_rows)


def raw_labels(table: pa.Table, spec: RankerSpec) -> np.ndarray:
    """(N, T) labels in label units, NaN where not observed."""
    return np.stack([_label(table, t) for t in spec.tasks], axis=1)


def request_index(table: pa.Table, spec: RankerSpec) -> np.ndarray:
    """(N,) dense index of each row's request (rows of a request must be contiguous)."""
    req = table.column(spec.data.request_id).to_numpy(zero_copy_only=False)
    return np.cumsum(np.r_[0, req[1:] != req[:-1]]).astype(np.int64)


def encode(table: pa.Table, encoders: FeatureEncoders, spec: RankerSpec,
           scalers: dict[str, LabelScaler]) -> Encoded:
    inputs = feature_inputs(table, encoders)
    raw = raw_labels(table, spec)
    mask = ~np.isnan(raw)
    targets = raw.copy()
    for j, t in enumerate(spec.tasks):
        if t.name in scalers:
            targets[:, j] = scalers[t.name].forward(raw[:, j])
    return Encoded(
        categorical=inputs["categorical"], numeric=inputs["numeric"],
        labels=np.where(mask, targets, 0.0).astype(np.float32), raw_labels=raw,
        mask=mask, request=request_index(table, spec),
    )
