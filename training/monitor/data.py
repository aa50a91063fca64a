"""The rows `ranker monitor drift` judges: the server's impression log or any Parquet of feature rows."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from service.contract.bundle import Manifest
from service.impressions.record import FLAG_FIELDS, HEAD_PREFIX
from training.monitor.drift import Flags


class MonitorInputError(Exception):
    """Rows that cannot be judged: no such file, no feature column, an unreadable time column."""


@dataclass
class Served:
    """The rows read: a column per feature and head found (by model name), the log's flags when it has them."""

    rows: int
    features: dict[str, pa.ChunkedArray]
    heads: dict[str, np.ndarray]
    flags: dict[str, Flags] | None  # None: plain rows, without the log's defaulted/clipped lists
    filters: list[str] = field(default_factory=list)


def parquet_files(data: str) -> tuple[list[str], str | None]:
    """A directory (every *.parquet under it, hive partitions read as columns), a file or a glob."""
    p = Path(data)
    if p.is_dir():
        files = sorted(glob.glob(str(p / "**" / "*.parquet"), recursive=True))
        base = str(p)
    else:
        files, base = sorted(glob.glob(data, recursive=True)), None
    if not files:
        raise MonitorInputError(f"{data}: no Parquet files")
    return files, base


def feature_column(name: str, schema: pa.Schema) -> str | None:
    """The log writes `feature_<name>` when a name collides with a reserved column; plain rows use `name`."""
    for column in (f"feature_{name}", name):
        if column in schema.names:
            return column
    return None


def read_served(data: str, manifest: Manifest, start: datetime | None, end: datetime | None,
                max_rows: int) -> Served:
    files, base = parquet_files(data)
    try:
        dataset = ds.dataset(files, format="parquet", partitioning="hive" if base else None, partition_base_dir=base)
    except (pa.ArrowInvalid, OSError) as e:
        raise MonitorInputError(f"{data}: {e}") from e
    schema = dataset.schema
    columns = {f.name: c for f in manifest.features.all() if (c := feature_column(f.name, schema))}
    heads = {t: f"{HEAD_PREFIX}{t}" for t in manifest.task_names if f"{HEAD_PREFIX}{t}" in schema.names}
    if not columns and not heads:
        raise MonitorInputError(f"{data}: none of the bundle's feature columns "
                                f"({', '.join(f.name for f in manifest.features.all())}) nor head_<task> columns")
    filters = _filters(schema, manifest, start, end)
    wanted = [*columns.values(), *heads.values(), *(f for f in FLAG_FIELDS if f in schema.names)]
    try:
        table = dataset.scanner(columns=sorted(set(wanted)), filter=_and(f for f, _ in filters)).head(max_rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as e:
        raise MonitorInputError(f"{data}: {e}") from e
    flags = _flags(table, list(columns)) if FLAG_FIELDS[0] in table.column_names else None
    return Served(rows=table.num_rows, features={name: table.column(c) for name, c in columns.items()},
                  heads={t: pc.fill_null(table.column(c), np.nan).to_numpy().astype(np.float64)
                         for t, c in heads.items()},
                  flags=flags, filters=[text for _, text in filters])


def _filters(schema: pa.Schema, manifest: Manifest, start: datetime | None, end: datetime | None) -> list:
    out = []
    if "model_name" in schema.names:  # an impression log holds every model the server served
        out.append((ds.field("model_name") == manifest.model_name, f"model_name = {manifest.model_name}"))
    if (start or end) and "ts" not in schema.names:
        raise MonitorInputError("--start/--end need a ts column, the data has none")
    if start:
        out.append((ds.field("ts") >= pa.scalar(start, schema.field("ts").type), f"ts >= {start.isoformat()}"))
    if end:
        out.append((ds.field("ts") < pa.scalar(end, schema.field("ts").type), f"ts < {end.isoformat()}"))
    return out


def _and(expressions):
    out = None
    for e in expressions:
        out = e if out is None else out & e
    return out


def _flags(table: pa.Table, features: list[str]) -> dict[str, Flags]:
    """Per feature, the share of rows whose `defaulted` / `clipped` list names it."""
    n = max(table.num_rows, 1)
    shares = {}
    for flag in FLAG_FIELDS:
        counts = {}
        if flag in table.column_names:
            for pair in pc.value_counts(pc.list_flatten(table.column(flag))).to_pylist():
                counts[pair["values"]] = pair["counts"]
        shares[flag] = counts
    return {f: Flags(defaulted=shares["defaulted"].get(f, 0) / n, clipped=shares["clipped"].get(f, 0) / n)
            for f in features}
