"""Parquet rows -> validated tables -> encoded arrays.

Encoding goes through `service.contract.features` (the encoders the server uses); this module only reads
Parquet, checks it against the spec, fits the encoders' statistics on the training split and
prepares labels. Null labels stay missing: they become mask=False, never 0. Splitting the rows
is training/data/splits.py; grouping them into requests is training/data/requests.py.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from service.contract.features import CategoricalEncoder, FeatureEncoders, NumericEncoder
from training.data import requests
from training.features.join import FeatureTableError, join_keys, join_lookup_tables, joined_columns
from training.spec import DataConfig, NumericFeature, RankerSpec, TaskConfig


class DataError(ValueError):
    """Data that does not fit the spec; the message names the column and the problem."""


# -- reading ---------------------------------------------------------------------------------------


def dataset(path: str) -> ds.Dataset:
    """A Parquet file, a directory (hive partitions allowed) or a glob pattern; `s3://...` (any fsspec
    URL) through fsspec."""
    if "://" in path:
        return _url_dataset(path)
    p = Path(path)
    if p.is_dir() or p.is_file():
        return ds.dataset(str(p), format="parquet", partitioning="hive")
    files = sorted(glob.glob(path, recursive=True))
    if not files:
        raise DataError(f"data.path {path!r}: no Parquet file, directory or glob match")
    return ds.dataset(files, format="parquet")


def _url_dataset(url: str) -> ds.Dataset:
    import fsspec
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, root = fsspec.core.url_to_fs(url)
    arrow_fs = PyFileSystem(FSSpecHandler(fs))
    if fs.isdir(root) or fs.isfile(root):
        return ds.dataset(root, format="parquet", partitioning="hive", filesystem=arrow_fs)
    files = sorted(fs.glob(root))
    if not files:
        raise DataError(f"data.path {url!r}: no Parquet file, directory or glob match")
    return ds.dataset(files, format="parquet", filesystem=arrow_fs)


def column_roles(spec: RankerSpec) -> dict[str, str]:
    """Every column a run reads, and what the spec uses it for (for messages about missing columns)."""
    roles: dict[str, str] = {}
    d = spec.data
    for key in ("timestamp", "request_id", "item_id", "split_column"):
        if getattr(d, key) is not None and (key != "split_column" or d.train is None):
            roles.setdefault(getattr(d, key), f"data.{key}")
    for f in (*spec.features.categorical, *spec.features.numeric):
        roles.setdefault(f.name, f"feature {f.name!r}")
    for t in spec.label_tasks():
        roles.setdefault(t.column, f"label of task {t.name!r}")
    if spec.model.bias_tower is not None:  # training-only inputs (training/modeling/bias_tower.py)
        for c in spec.model.bias_tower.columns():
            roles.setdefault(c, "bias feature (model.bias_tower)")
    return roles


def required_columns(spec: RankerSpec) -> list[str]:
    return list(column_roles(spec))


def load_table(spec: RankerSpec, path: str | None = None) -> pa.Table:
    """Read the spec's columns from `path` (default data.path), restricted to its [start, end) window;
    validates before returning."""
    path = path or spec.data.path
    if path is None:
        raise DataError("the spec names pre-split files (data.train); read them with training.data.splits")
    data = dataset(path)
    table = data.to_table(columns=read_columns(data, spec, path), filter=window_filter(data.schema, spec.data))
    try:
        table = join_lookup_tables(table, spec)
    except FeatureTableError as e:
        raise DataError(str(e)) from e
    validate(table, spec, path)
    return table


def read_columns(data: ds.Dataset, spec: RankerSpec, path: str) -> list[str]:
    """The columns of `data` a run reads; raises DataError naming each column the spec needs and it lacks."""
    names = set(data.schema.names)
    roles = column_roles(spec)
    for key in join_keys(spec):
        roles.setdefault(key, "the id a lookup table is joined on")
    joined = joined_columns(spec)  # looked-up features a lookup table supplies (training/features/join.py)
    missing = [c for c in roles if c not in names and c not in joined]
    if missing:
        what = ", ".join(f"{c!r} ({roles[c]})" for c in missing)
        raise DataError(f"{path}: missing column(s) {what}; the data has {sorted(names)}. Rename the spec's "
                        "key to a column the data has, or leave the key out where it is optional "
                        "(data.timestamp, data.request_id, data.item_id)")
    return [c for c in roles if c in names]


def window_filter(schema: pa.Schema, cfg: DataConfig) -> ds.Expression | None:
    """The [data.start, data.end) window as a dataset filter (None without bounds)."""
    if cfg.timestamp is None:
        if cfg.start or cfg.end:
            raise DataError("data.start/end select rows by time and need data.timestamp")
        return None
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


def validate(table: pa.Table, spec: RankerSpec, path: str | None = None) -> None:
    """Raise DataError naming the first column that does not fit the spec."""
    if table.num_rows == 0:
        no_rows(spec, path)
    validate_values(table, spec)
    for f in spec.features.numeric:
        no_finite_values(f.name, pc.sum(pc.is_finite(table.column(f.name).cast(pa.float64()))).as_py() or 0)
    for task in spec.label_tasks():
        no_labels(task, len(table) - table.column(task.column).null_count)


def validate_values(table: pa.Table, spec: RankerSpec) -> None:
    """The checks that hold row by row (types, null request ids, label values), so a stream of record
    batches is checked batch by batch; `validate` adds the ones over every row (no rows, no finite
    value, no label at all)."""
    for f in spec.features.categorical:
        t = table.schema.field(f.name).type
        if not _is_categorical(t):
            raise DataError(f"column {f.name!r}: categorical features must be string, integer or boolean, not {t}")
    if spec.data.request_id is not None and (nulls := table.column(spec.data.request_id).null_count):
        raise DataError(f"column {spec.data.request_id!r} (data.request_id): {nulls:,} rows have no request id")
    for f in spec.features.numeric:
        _require_numeric(f.name, table.column(f.name).type, "numeric feature")
    for task in spec.label_tasks():
        _validate_label(table.column(task.column), task)
    if any(t.listwise for t in spec.tasks):
        labels = raw_labels(table, spec)
        for j, task in enumerate(spec.tasks):
            if task.listwise and np.nanmin(labels[:, j], initial=0.0) < 0:
                raise DataError(f"task {task.name!r}: its gain {spec.task_gain(task)} is negative on some rows; "
                                "NDCG gains must be >= 0 (weight only labels that are never negative)")


def no_rows(spec: RankerSpec, path: str | None) -> None:
    window = f" in [{spec.data.start}, {spec.data.end})" if spec.data.start or spec.data.end else ""
    raise DataError(f"{path or spec.data.path}: no rows{window}")


def no_finite_values(name: str, finite: int) -> None:
    if not finite:
        raise DataError(f"column {name!r}: numeric feature has no finite values (all null, NaN or inf)")


def no_labels(task: TaskConfig, observed: int) -> None:
    if not observed:
        raise DataError(f"column {task.column!r}: task {task.name!r} has no labels at all (every value is null)")


def _is_categorical(t: pa.DataType) -> bool:
    # binary: bytes columns as pandas often writes them; they are read as UTF-8 text.
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)
            or pa.types.is_dictionary(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t))


def _require_numeric(name: str, t: pa.DataType, what: str) -> None:
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        hint = ""
        if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t):
            hint = "; if it holds numbers as text, cast it when writing the Parquet (e.g. pandas astype(int))"
        raise DataError(f"column {name!r}: {what} must be numeric or boolean, not {t}{hint}")


def _validate_label(col: pa.ChunkedArray, task: TaskConfig) -> None:
    _require_numeric(task.column, col.type, f"label of task {task.name!r}")
    values = col.cast(pa.float64())
    if values.null_count == len(values):
        return  # nothing observed here; a task with no label anywhere is refused by `validate` (no_labels)
    if pc.any(pc.invert(pc.is_finite(values))).as_py():
        raise DataError(f"column {task.column!r}: label of task {task.name!r} has NaN or inf values")
    if task.type == "binary" and not pc.all(pc.is_in(values.drop_null(), pa.array([0.0, 1.0]))).as_py():
        raise DataError(f"column {task.column!r}: binary task {task.name!r} has labels other than 0/1")
    if task.label_transform == "log1p" and pc.any(pc.less(values, 0)).as_py():
        raise DataError(f"column {task.column!r}: task {task.name!r} uses log1p but has negative labels")


# -- encoders and labels ---------------------------------------------------------------------------


# The encoder rules, one for both data paths: the in-memory fit below reads a whole training table,
# the streamed one (training/streaming/fitting.py) merged statistics of its record batches; both hand
# their statistics to encoders_of.
ValueFreq = tuple[list[str], np.ndarray]  # a column's distinct values and their counts
NumericSummary = tuple[float, float, float, float, float]  # fill (median), clip min, clip max, mean, std


def encoders_of(spec: RankerSpec, counts: dict[str, ValueFreq], numeric: dict[str, NumericSummary]) -> FeatureEncoders:
    """The feature encoders from training statistics: per categorical feature its (values, counts), per
    numeric one (median, min, max of the finite values; mean, std of the transformed, filled values)."""
    categorical = [
        CategoricalEncoder(name=f.name, source=f.source, on_missing=f.on_missing,
                           vocab=vocabulary(*counts[f.name], f.max_vocab, f.min_count))
        for f in spec.features.categorical
    ]
    encoders = []
    for f in spec.features.numeric:
        fill, lo, hi, mean, std = numeric[f.name]
        encoders.append(with_moments(NumericEncoder(name=f.name, source=f.source, transform=f.transform, fill_value=fill,
                                                    clip_min=lo, clip_max=hi, on_missing=f.on_missing), mean, std))
    return FeatureEncoders(categorical=categorical, numeric=encoders, item_id_feature=item_id_feature(spec))


def fit_encoders(train: pa.Table, spec: RankerSpec) -> FeatureEncoders:
    """Vocabularies, normalization statistics and clip ranges from the training split only."""
    counts = {f.name: value_counts(train.column(f.name)) for f in spec.features.categorical}
    numeric = {f.name: _numeric_stats(train.column(f.name), f) for f in spec.features.numeric}
    return encoders_of(spec, counts, numeric)


def item_id_feature(spec: RankerSpec) -> str | None:
    """The categorical item feature that data.item_id names: the server feeds a candidate's item_id into it."""
    item_id = spec.data.item_id
    match = [f.name for f in spec.features.categorical if f.name == item_id and f.source == "item"]
    return match[0] if match else None


def as_strings(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.cast(pa.string())


def value_counts(col: pa.ChunkedArray) -> ValueFreq:
    """The column's non-null values as strings, and how often each occurs."""
    counts = pc.value_counts(as_strings(col).drop_null())
    return counts.field("values").to_pylist(), counts.field("counts").to_numpy()


def column_vocabulary(col: pa.ChunkedArray, max_vocab: int, min_count: int) -> list[str]:
    return vocabulary(*value_counts(col), max_vocab, min_count)


def vocabulary(values: list[str], freq: np.ndarray, max_vocab: int, min_count: int) -> list[str]:
    """The max_vocab most frequent values seen at least min_count times, from (value, count) pairs."""
    # Most frequent first; ties broken by value so the vocabulary is deterministic.
    order = sorted(range(len(values)), key=lambda i: (-freq[i], values[i]))
    return [values[i] for i in order[:max_vocab] if freq[i] >= min_count]


def _numeric_stats(col: pa.ChunkedArray, f: NumericFeature) -> NumericSummary:
    """Missing -> the median; values clipped to the [min, max] of the finite training values.

    The clip range changes no training row (all lie inside it); at serving it maps a value beyond
    anything training saw (1e308, a typo in units) to the nearest value it did see, so no finite
    input yields an extrapolated or non-finite score.
    """
    x = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    finite = x[np.isfinite(x)]
    fill, lo, hi = float(np.median(finite)), float(finite.min()), float(finite.max())
    probe = NumericEncoder(name=f.name, source=f.source, transform=f.transform)  # for its transform
    z = probe.apply_transform(np.clip(np.where(np.isnan(x), fill, x), lo, hi))
    return fill, lo, hi, float(z.mean()), float(z.std())


def with_moments(probe: NumericEncoder, mean: float, std: float) -> NumericEncoder:
    """The encoder standardizing by (mean, std) of its transformed training values; a constant column
    (std ~ 0) keeps std 1."""
    return probe.model_copy(update={"mean": mean, "std": std if std > 1e-12 else 1.0})


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
        z = cls.transformed(y, transform)
        z = z[np.isfinite(z)]
        return cls.of(transform, z.size, float(z.mean()) if z.size else 0.0, float(z.std()) if z.size else 1.0)

    @staticmethod
    def transformed(y: np.ndarray, transform: str) -> np.ndarray:
        return np.log1p(y) if transform == "log1p" else y

    @classmethod
    def of(cls, transform: str, count: int, mean: float, std: float) -> LabelScaler:
        """From the moments of the transformed finite labels (count 0 = no labels: identity)."""
        if not count:
            return cls(transform, 0.0, 1.0)
        return cls(transform, mean, std if std > 1e-12 else 1.0)


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
    """One split as arrays.

    categorical (N, C) int64; numeric (N, F) float32;
    labels (N, T) float32, training targets (regression already scaled), 0 where missing;
    raw_labels (N, T) float64 in label units, NaN where missing; mask (N, T) bool, True = observed;
    request (N,) int64 dense request index (rows with equal request_id share one, wherever they
    lie), or None when the spec has no request_id.
    """

    categorical: np.ndarray
    numeric: np.ndarray
    labels: np.ndarray
    raw_labels: np.ndarray
    mask: np.ndarray
    request: np.ndarray | None

    def __len__(self) -> int:
        return len(self.categorical)

    def head(self, n: int) -> Encoded:
        """The first n rows (e.g. the rows a parity check runs on)."""
        return self.rows(slice(0, n))

    def rows(self, sl: slice) -> Encoded:
        return Encoded(**{f.name: None if (a := getattr(self, f.name)) is None else a[sl] for f in fields(self)})

    def chunks(self, size: int) -> Iterator[Encoded]:
        """Consecutive slices of at most `size` rows (zero-copy), as a streamed split yields them."""
        for i in range(0, len(self), size):
            yield self.rows(slice(i, i + size))

    def shard(self, rank: int, world: int) -> tuple[np.ndarray, Encoded]:
        """Rank's contiguous share of the rows: (their positions in this split (n,), the rows)."""
        lo, hi = len(self) * rank // world, len(self) * (rank + 1) // world
        return np.arange(lo, hi), self.rows(slice(lo, hi))


def feature_inputs(table: pa.Table, encoders: FeatureEncoders) -> dict[str, np.ndarray]:
    """Model inputs for every row of a table, through the serving encoders."""
    columns = {}
    for f in encoders.categorical:
        columns[f.name] = as_strings(table.column(f.name)).to_numpy(zero_copy_only=False)
    for f in encoders.numeric:
        columns[f.name] = table.column(f.name).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return encoders.encode_columns(columns, table.num_rows)


def raw_labels(table: pa.Table, spec: RankerSpec) -> np.ndarray:
    """(N, T) labels in label units, NaN where not observed. A ranking task's label is its gain: the weighted
    sum of its gain tasks' labels (null counts 0); with missing_gain: skip, NaN where every one of them is null."""
    labels = {t.name: _label(table, t) for t in spec.label_tasks()}
    for t in spec.tasks:
        if t.listwise:
            parts = np.stack([labels[name] for name in spec.task_gain(t)], axis=1)
            weights = np.array(list(spec.task_gain(t).values()))
            gain = np.nan_to_num(parts) @ weights
            skip = t.missing_gain == "skip" and np.isnan(parts).all(axis=1)
            labels[t.name] = np.where(skip, np.nan, gain)
    return np.stack([labels[t.name] for t in spec.tasks], axis=1)


def request_index(table: pa.Table, spec: RankerSpec) -> np.ndarray | None:
    """(N,) dense request index, grouping rows by request_id value; None without a request_id."""
    if spec.data.request_id is None:
        return None
    return requests.request_index(table.column(spec.data.request_id))


def encode(table: pa.Table, encoders: FeatureEncoders, spec: RankerSpec,
           scalers: dict[str, LabelScaler], requests: bool = True) -> Encoded:
    """A table's rows as model inputs and targets; requests=False skips the request index (a
    streamed chunk's request index would be local to the chunk)."""
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
        mask=mask, request=request_index(table, spec) if requests else None,
    )
