"""Logged requests scored by a bundle: the input of replay, diff and tune.

A log is Parquet (a file, a directory of files or a glob) with one row per shown candidate: the
features the bundle reads, a request id column, optionally an item id column (both by default
named as in the bundle's training data, training/profiles/columns.py), and one label column per
task (by default named as the task; `--label task=column` maps another column, e.g. a
simulator's true probability). The heads are the bundle's served outputs: onnxruntime plus the
manifest's calibration (`LoadedBundle.predict`), encoded by the manifest's own encoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from service.contract.bundle import LoadedBundle
from service.profiles import CompiledProfile, CompiledWeights, compile_weights, parse_weights
from training import data as D
from training.evaluation.evaluate import bundle_predictions
from training.evaluation.ranking import Requests
from training.profiles.columns import LogColumns


@dataclass(frozen=True)
class ScoredLog:
    """Every row of a log with its served heads.

    Args:
        requests: rows grouped by request id value.
        heads: task -> (N,) served output, as the server computes it.
        labels: task -> (N,) float64 label, NaN where null (tasks whose column is absent are left out).
        item_ids: (N,) item ids, or None without an item id column.
    """

    requests: Requests
    heads: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    item_ids: np.ndarray | None

    def __len__(self) -> int:
        return len(self.requests.group)

    def scores(self, profile: CompiledProfile) -> np.ndarray:
        """(N,) the profile's scores: the server's own combination code."""
        return profile.combine(self.heads)

    def subset(self, keep: np.ndarray) -> ScoredLog:
        """The log restricted to the requests where keep (R,) is True."""
        rows = self.requests.subset(keep)
        return ScoredLog(
            requests=Requests.of(self.requests.ids[self.requests.group[rows]]),
            heads={t: v[rows] for t, v in self.heads.items()},
            labels={t: v[rows] for t, v in self.labels.items()},
            item_ids=None if self.item_ids is None else self.item_ids[rows],
        )


def read_log(path: str, bundle: LoadedBundle, columns: LogColumns) -> pa.Table:
    """The columns replay needs; DataError naming any that is missing or not numeric."""
    data = D.dataset(str(path))
    names = set(data.schema.names)
    features = [f.name for f in bundle.manifest.features.all()]
    needed = [columns.request_id, *features] + ([columns.item_id] if columns.item_id else [])
    missing = [c for c in needed if c not in names]
    if missing:
        hints = columns.missing_hints(missing)
        raise D.DataError(f"{path}: missing column(s) {missing}: " + "; ".join(
            hints + [f"the bundle reads features {features}"]) + f"; the data has {sorted(names)}")
    unknown = sorted(set(columns.labels) - set(bundle.manifest.task_names))
    if unknown:
        raise D.DataError(f"--label: unknown task(s) {unknown}; the bundle's tasks are {bundle.manifest.task_names}")
    labels = [columns.label(t) for t in bundle.manifest.task_names if columns.label(t) in names]
    table = data.to_table(columns=list(dict.fromkeys(needed + labels)))
    if table.num_rows == 0:
        raise D.DataError(f"{path}: no rows")
    return table


def _labels(table: pa.Table, bundle: LoadedBundle, columns: LogColumns) -> dict[str, np.ndarray]:
    out = {}
    for task in bundle.manifest.task_names:
        name = columns.label(task)
        if name not in table.column_names:
            continue
        col = table.column(name)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type)):
            raise D.DataError(f"column {name!r}: the label of task {task!r} must be numeric, not {col.type}")
        values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        if np.any(values[np.isfinite(values)] < 0) or np.any(np.isinf(values)):
            raise D.DataError(f"column {name!r}: gains must be finite and >= 0 (task {task!r})")
        out[task] = values
    return out


def score_log(bundle: LoadedBundle, table: pa.Table, columns: LogColumns) -> ScoredLog:
    """Score every row with the bundle (the served heads) and group rows by request id value."""
    tasks = bundle.manifest.task_names
    preds = bundle_predictions(bundle, table, tasks)
    item_ids = None
    if columns.item_id:
        item_ids = np.asarray(table.column(columns.item_id).to_numpy(zero_copy_only=False))
    request_ids = np.asarray(table.column(columns.request_id).to_numpy(zero_copy_only=False))
    return ScoredLog(requests=Requests.of(request_ids), heads={t: preds[:, j] for j, t in enumerate(tasks)},
                     labels=_labels(table, bundle, columns), item_ids=item_ids)


def load_weights(path: Path, bundle: LoadedBundle) -> CompiledWeights:
    """A weights file checked exactly as the server checks it: parse, then compile against the model's tasks."""
    return compile_weights(parse_weights(Path(path).read_bytes(), source=str(path)), bundle.manifest.tasks)


def choose_profiles(weights: CompiledWeights, names: list[str] | None) -> list[str]:
    """The profiles to report: `names` (each must exist) or all, the default profile first."""
    default = weights.weights.file.default_profile
    if names:
        unknown = [n for n in names if n not in weights.profiles]
        if unknown:
            raise D.DataError(f"--profile: unknown profile(s) {unknown}; the file has {sorted(weights.profiles)}")
        return list(dict.fromkeys(names))
    return [default, *sorted(n for n in weights.profiles if n != default)]


def weights_from_mapping(profiles: dict[str, dict], default: str, tasks: list) -> CompiledWeights:
    """Compile in-memory profiles ({name: {task: {weight, transform}}}) through the same parser."""
    import yaml

    text = yaml.safe_dump({"default_profile": default, "profiles": profiles}, sort_keys=False)
    return compile_weights(parse_weights(text), tasks)

