"""The joined log (`ranker logs join`'s output) as the arrays an experiment report needs.

One row per served candidate, with the columns the report reads:

    request id      the spec's data.request_id, else `request_id`
    position        1 = top, the order served
    user_key        the unit of the split and of the bootstrap (null: the request is its own unit)
    model_role      current | canary | shadow; shadow rows were never shown and are dropped
                    (absent in older logs: every row is current)
    experiment, arm the weights experiment and its arm (null arm: not in the experiment, dropped)
    model_version   the model that scored the row
    labels          one column per label task (task.column or task.name), null = not observed

Only those columns are read (pyarrow.dataset, hive partitions such as date=YYYY-MM-DD/), and ids
become dense integer codes with Arrow's dictionary encoding, so millions of rows cost no Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from training.data.instants import utc_instant
from training.spec import RankerSpec

BY = ("arm", "model_version", "model_role")
SHADOW = "shadow"
CURRENT = "current"


class ExperimentError(ValueError):
    """Bad input to an experiment report (a missing column, an absent arm, a bad option); the message names it."""


@dataclass
class JoinedLog:
    """The rows of one comparison, ready for the statistics.

    Args:
        arm: (N,) dense arm index of each row into `arms`.
        arms: the arm names (profile arms, model versions as text, or model roles).
        request: (N,) dense request index; cluster: (N,) dense user index (a request without a user
            key is a cluster of its own).
        position: (N,) served position, 1 = top.
        labels: label task name -> (N,) float64, NaN = not observed.
        window: the first and last row time compared (ISO, UTC), when the log has the time column.
        counts: rows and requests read and left out, by reason.
    """

    arm: np.ndarray
    arms: list[str]
    request: np.ndarray
    cluster: np.ndarray
    position: np.ndarray
    labels: dict[str, np.ndarray]
    experiment: str | None = None
    window: dict[str, str] | None = None
    roles: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def label_columns(spec: RankerSpec) -> dict[str, str]:
    """Label task name -> its column in the log (task.column, else the task's name)."""
    return {t.name: t.column or t.name for t in spec.label_tasks()}


def codes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(N,) dense integer code of each value (equal values, equal codes); -1 for nulls."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return pc.fill_null(array.dictionary_encode().indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def open_dataset(path: str | Path) -> ds.Dataset:
    if not Path(path).exists():
        raise ExperimentError(f"{path}: no such file or directory (the joined log: a Parquet file or directory)")
    try:
        return ds.dataset(str(path), format="parquet", partitioning="hive")
    except (pa.ArrowInvalid, OSError) as e:
        raise ExperimentError(f"{path}: not a Parquet dataset: {e}") from e


def read_joined(path: str | Path, spec: RankerSpec, by: str = "arm", experiment: str | None = None,
                start: str | None = None, end: str | None = None) -> JoinedLog:
    """Read the rows an experiment report compares, grouped `by` arm, model_version or model_role; with
    `start`/`end` (ISO times, naive = UTC) only the rows served in [start, end).

    Raises ExperimentError naming a missing column, an unknown experiment, or a log with several
    experiments when `experiment` is not given.
    """
    if by not in BY:
        raise ExperimentError(f"--by {by!r}: not one of {', '.join(BY)}")
    dataset = open_dataset(path)
    names = set(dataset.schema.names)
    request_col = spec.data.request_id or "request_id"
    time_col = spec.data.timestamp or "ts"
    labels = label_columns(spec)
    need = {request_col: "the request id (data.request_id)", "position": "the served position",
            "user_key": "the user key the split hashed", **{c: f"the label of task {t!r}" for t, c in labels.items()}}
    need |= {"arm": "--by arm", "experiment": "--by arm"} if by == "arm" else {by: f"--by {by}"}
    for column, why in need.items():
        if column not in names:
            raise ExperimentError(f"the joined log {path} has no column {column!r} ({why})")
    if (start or end) and time_col not in names:
        raise ExperimentError(f"--start/--end: the joined log {path} has no time column {time_col!r} (data.timestamp)")
    wanted = sorted(set(need) | ({"model_role", "model_version", time_col} & names))
    when = None
    for flag, bound, keep in (("--start", start, ds.field(time_col).__ge__), ("--end", end, ds.field(time_col).__lt__)):
        if bound is not None:
            cut = keep(pa.scalar(_instant(flag, bound), type=pa.timestamp("ms", tz="UTC")))
            when = cut if when is None else when & cut
    table = dataset.to_table(columns=wanted, filter=when)
    counts = {"rows_read": table.num_rows}

    if "model_role" in names:  # shadow rows were scored, not shown: they have no outcome
        shadow = pc.fill_null(pc.equal(table["model_role"], SHADOW), False)
        counts["shadow_rows"] = int(pc.sum(shadow).as_py() or 0)
        table = table.filter(pc.invert(shadow))
    else:
        counts["shadow_rows"] = 0
    if by == "arm":
        table, experiment = _one_experiment(table, experiment, request_col, counts)

    arm_values = _arm_text(table[by], by)
    encoded = arm_values.dictionary_encode()
    arm_codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    arms = encoded.dictionary.to_pylist()
    request = codes(table[request_col])
    if (request < 0).any():
        raise ExperimentError(f"the column {request_col!r} (the request id) has nulls")
    users = codes(table["user_key"])
    keyless = users < 0
    counts["rows_without_user_key"] = int(keyless.sum())
    # A request without a user key cannot be tied to its user: it is a unit of its own.
    cluster = np.where(keyless, users.max(initial=-1) + 1 + request, users)
    cluster = np.unique(cluster, return_inverse=True)[1].reshape(-1)
    if table["position"].null_count:
        raise ExperimentError(f"the column 'position' has nulls in {table['position'].null_count} rows")
    position = _floats(table, "position", "the served position")
    values = {t: _floats(table, c, f"the label of task {t!r}") for t, c in labels.items()}
    roles = _roles(table, by)
    counts["rows"] = table.num_rows
    return JoinedLog(arm=arm_codes, arms=[str(a) for a in arms], request=request, cluster=cluster, position=position,
                     labels=values, experiment=experiment, window=_window(table, time_col), roles=roles, counts=counts)


def _instant(flag: str, text: str) -> datetime:
    try:
        return utc_instant(text)
    except ValueError as e:
        raise ExperimentError(f"{flag}: {e}") from None


def _window(table: pa.Table, column: str) -> dict[str, str] | None:
    """The first and last time of the compared rows, ISO text (None without a time column or rows)."""
    if column not in table.column_names or table.num_rows == 0 or not pa.types.is_timestamp(table[column].type):
        return None
    bounds = pc.min_max(table[column])
    first, last = bounds["min"].as_py(), bounds["max"].as_py()
    return None if first is None else {"start": first.isoformat(), "end": last.isoformat()}


def _floats(table: pa.Table, column: str, what: str) -> np.ndarray:
    """(N,) float64 of a numeric column, NaN for nulls; ExperimentError naming a column that is not numeric."""
    try:
        values = table[column].cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise ExperimentError(f"the column {column!r} ({what}) is {table[column].type}, not numeric") from e
    return values.to_numpy(zero_copy_only=False).astype(np.float64)


def _one_experiment(table: pa.Table, experiment: str | None, request_col: str, counts: dict) -> tuple[pa.Table, str]:
    """The rows of one weights experiment; rows without an arm (a named profile, no user key) are counted out."""
    no_arm = table["arm"].is_null()
    counts["excluded_rows_no_arm"] = int(pc.sum(no_arm).as_py() or 0)
    counts["excluded_requests_no_arm"] = len(pc.unique(table.filter(no_arm)[request_col]))
    table = table.filter(pc.invert(no_arm))
    found = sorted(v for v in pc.unique(table["experiment"]).to_pylist() if v is not None)
    if experiment is None:
        if len(found) > 1:
            raise ExperimentError(f"the log holds several experiments {found}: pick one with --experiment NAME")
        if not found:
            raise ExperimentError("no row of the joined log has an experiment arm (columns 'experiment', 'arm' "
                                  "are null everywhere): was an experiment configured in weights.yaml?")
        experiment = found[0]
    elif experiment not in found:
        raise ExperimentError(f"--experiment {experiment!r}: not in the log (experiments: {found})")
    other = pc.invert(pc.fill_null(pc.equal(table["experiment"], experiment), False))
    counts["other_experiment_rows"] = int(pc.sum(other).as_py() or 0)
    return table.filter(pc.invert(other)), experiment


def _arm_text(column: pa.ChunkedArray, name: str) -> pa.Array:
    """The grouping column as text (model versions are integers)."""
    array = column.combine_chunks()
    if array.null_count:
        raise ExperimentError(f"the column {name!r} (--by {name}) has nulls in {array.null_count} rows")
    return array if pa.types.is_string(array.type) else pc.cast(array, pa.string())


def _roles(table: pa.Table, by: str) -> dict[str, list[str]]:
    """Model version (as text) -> the roles it was served in (for the control of --by model_version)."""
    if by != "model_version":
        return {}
    if "model_role" not in table.column_names:
        return {str(v): [CURRENT] for v in pc.unique(table["model_version"]).to_pylist()}
    pairs = table.select(["model_version", "model_role"]).group_by(["model_version", "model_role"]).aggregate([])
    out: dict[str, list[str]] = {}
    for version, role in zip(pairs["model_version"].to_pylist(), pairs["model_role"].to_pylist(), strict=True):
        out.setdefault(str(version), []).append(role or CURRENT)
    return out
