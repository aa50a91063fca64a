"""Rows -> train / valid / test, the way the spec's `data:` section says.

    files    data.train (+ data.valid, data.test): pre-split; a missing valid is carved from train
    column   data.split_column: each row's value (train / valid / test) names its split
    time     oldest rows train, then valid, newest test (needs data.timestamp)
    random   whole requests (rows, without a request_id) shuffled with data.seed

The test split is optional (test_fraction: 0, or no data.test). Every split is checked against
the spec like the training rows are, and a request whose rows fall in two splits is reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.data import DataError, load_table, requests
from training.spec import RankerSpec
from training.spec.data import SPLIT_NAMES, DataConfig


@dataclass(frozen=True)
class Splits:
    """The three tables of a run; `test` is None when the run has no test split."""

    train: pa.Table
    valid: pa.Table
    test: pa.Table | None
    method: str  # how they were made, for reports: "by time", "at random (seed 0)", ...
    warnings: list[str] = field(default_factory=list)

    def named(self) -> dict[str, pa.Table]:
        """The splits that exist, by name."""
        return {n: t for n, t in (("train", self.train), ("valid", self.valid), ("test", self.test))
                if t is not None}

    def holdout(self) -> pa.Table:
        """The rows a finished model is judged on: test, or valid when there is no test split."""
        return self.test if self.test is not None else self.valid

    # The interface export and the reports read, which the streamed splits (training/streaming/splits.py
    # StreamSplits) share: sizes, time ranges and rows a table at a time, never the whole split at once.
    def names(self) -> list[str]:
        return list(self.named())

    def holdout_name(self) -> str:
        return "test" if self.test is not None else "valid"

    def rows(self, split: str) -> int:
        t = getattr(self, split)
        return t.num_rows if t is not None else 0

    def time_range(self, split: str, column: str) -> tuple | None:
        """(min, max) of `column` over the split's rows."""
        mm = pc.min_max(getattr(self, split).column(column))
        return mm["min"].as_py(), mm["max"].as_py()

    def tables(self, split: str, columns: list[str] | None = None) -> Iterator[pa.Table]:
        t = getattr(self, split)
        yield t if columns is None else t.select(columns)

    def first_rows(self, split: str, n: int) -> pa.Table:
        return getattr(self, split).slice(0, n)

    @property
    def column_names(self) -> list[str]:
        return self.train.column_names


def load_splits(spec: RankerSpec) -> Splits:
    """Read the spec's data and split it; raises DataError naming the file, column or key at fault."""
    cfg = spec.data
    if cfg.train is None:
        splits = split_table(load_table(spec), cfg)
    else:
        splits = _from_files(spec)
    if cfg.request_id is not None and (note := requests.spanning_warning(splits.named(), cfg.request_id)):
        splits = Splits(splits.train, splits.valid, splits.test, splits.method, [*splits.warnings, note])
    return splits


def split_table(table: pa.Table, cfg: DataConfig) -> Splits:
    """One table -> splits by split_column, else by time or a seeded shuffle (cfg.carve_method)."""
    if cfg.split_column:
        return split_by_column(table, cfg)
    if cfg.carve_method == "time":
        return split_by_time(table, cfg)
    return split_random(table, cfg)


def _from_files(spec: RankerSpec) -> Splits:
    cfg = spec.data
    train = load_table(spec, cfg.train)
    test = load_table(spec, cfg.test) if cfg.test else None
    if cfg.valid:
        return Splits(train, load_table(spec, cfg.valid), test, "from files")
    carve = cfg.model_copy(update={"test_fraction": 0.0})
    part = split_by_time(train, carve) if cfg.carve_method == "time" else split_random(train, carve)
    return Splits(part.train, part.valid, test, f"from files, valid carved from train {part.method}")


def sort_by_time(table: pa.Table, cfg: DataConfig) -> pa.Table:
    """Rows by timestamp (then request id): the order the time split cuts."""
    keys = [(cfg.timestamp, "ascending")] + ([(cfg.request_id, "ascending")] if cfg.request_id else [])
    return table.take(pc.sort_indices(table, sort_keys=keys))


def split_by_time(table: pa.Table, cfg: DataConfig) -> Splits:
    """Oldest rows train, then valid, then test; cuts fall between runs of equal request_id.

    A request whose rows are spread out in time (a user id as request_id) can still fall on both
    sides of a cut; load_splits reports it.
    """
    table = sort_by_time(table, cfg)
    n = table.num_rows
    if cfg.request_id:
        req = requests.request_index(table.column(cfg.request_id))
        starts = np.flatnonzero(np.r_[True, req[1:] != req[:-1]])  # first row of each run
    else:
        starts = np.arange(n)
    train_frac = 1.0 - cfg.valid_fraction - cfg.test_fraction
    a, b = (starts[min(np.searchsorted(starts, int(n * f)), len(starts) - 1)] if f < 1 else n
            for f in (train_frac, train_frac + cfg.valid_fraction))
    check_sizes(a, b - a, n - b, cfg)
    test = table.slice(b) if cfg.test_fraction > 0 else None
    return Splits(table.slice(0, a), table.slice(a, b - a), test, "by time")


def split_random(table: pa.Table, cfg: DataConfig) -> Splits:
    """Whole requests (or rows) in a seeded random order: the first test_fraction of the rows
    test, the next valid_fraction valid, the rest train. Rows keep their order within a split."""
    n = table.num_rows
    group = requests.request_index(table.column(cfg.request_id)) if cfg.request_id else np.arange(n)
    sizes = np.bincount(group)
    order = np.random.default_rng(cfg.seed).permutation(len(sizes))
    ends = np.cumsum(sizes[order])  # rows covered after each shuffled group
    rank = np.empty(len(sizes), dtype=np.int64)
    rank[order] = np.arange(len(sizes))
    cut_test = int(np.searchsorted(ends, n * cfg.test_fraction, side="left")) + 1 if cfg.test_fraction else 0
    cut_valid = int(np.searchsorted(ends, n * (cfg.test_fraction + cfg.valid_fraction), side="left")) + 1
    where = np.where(rank[group] < cut_test, 2, np.where(rank[group] < cut_valid, 1, 0))  # (N,) 0/1/2
    parts = [table.filter(pa.array(where == k)) for k in range(3)]
    test = parts[2] if cfg.test_fraction > 0 else None
    check_sizes(*(p.num_rows for p in parts), cfg)
    return Splits(parts[0], parts[1], test, f"at random (seed {cfg.seed})")


# The split rules both data paths follow (a stream applies them a record batch at a time:
# training/streaming/assign.py): a split column's codes, the rows every split must get.


def column_split_codes(col: pa.ChunkedArray | pa.Array, column: str) -> np.ndarray:
    """(N,) int8 split of each row by data.split_column's value: 0 train, 1 valid, 2 test (SPLIT_NAMES order).

    Raises DataError naming any other value (null included).
    """
    values = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
    codes = pc.index_in(values, value_set=pa.array(SPLIT_NAMES)).to_numpy(zero_copy_only=False)
    if np.isnan(codes.astype(float)).any():
        found = set(pc.unique(values).to_pylist()) - set(SPLIT_NAMES)
        raise DataError(f"column {column!r} (data.split_column): values must be train, valid or test; "
                        f"found {sorted(str(v) for v in found)}")
    return codes.astype(np.int8)


def check_column_splits(rows: list[int], column: str) -> None:
    """A split column must give train and valid rows; `rows` is the rows per split (SPLIT_NAMES order)."""
    for name, n in zip(("train", "valid"), rows, strict=False):
        if not n:
            raise DataError(f"column {column!r} (data.split_column) has no {name!r} rows")


def check_sizes(train: int, valid: int, test: int, cfg: DataConfig, test_wanted: bool | None = None) -> None:
    """Train and valid (and test, when asked for: test_fraction > 0 unless `test_wanted` says) must each get rows."""
    wanted = cfg.test_fraction > 0 if test_wanted is None else test_wanted
    if train <= 0 or valid <= 0 or (wanted and test <= 0):
        raise DataError(f"{train + valid + test:,} rows are too few for a train/valid"
                        f"{'/test' if cfg.test_fraction else ''} split with valid_fraction {cfg.valid_fraction} "
                        f"and test_fraction {cfg.test_fraction} (train {train:,}, valid {valid:,}, test {test:,} rows)")


def split_by_column(table: pa.Table, cfg: DataConfig) -> Splits:
    """Rows by the value of split_column: train, valid and (optionally) test."""
    codes = column_split_codes(table.column(cfg.split_column), cfg.split_column)
    rows = np.bincount(codes, minlength=len(SPLIT_NAMES))
    check_column_splits(rows.tolist(), cfg.split_column)
    parts = {name: table.filter(pa.array(codes == k)) for k, name in enumerate(SPLIT_NAMES)}
    return Splits(parts["train"], parts["valid"], parts["test"] if rows[2] else None,
                  f"by column {cfg.split_column!r}")
