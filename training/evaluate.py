"""Score a dataset with a published bundle (onnxruntime, the served graph) and measure it.

The retrain gates compare a candidate and the serving model with this, on the same holdout rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from service.contract.bundle import LoadedBundle
from training import data as D
from training.metrics import prediction_metrics
from training.spec import RankerSpec

CHUNK = 65_536


def bundle_predictions(bundle: LoadedBundle, table: pa.Table, task_names: list[str]) -> np.ndarray:
    """(N, T) natural-unit outputs of the bundle for every row of `table`, columns in task_names order."""
    inputs = D.feature_inputs(table, bundle.manifest.features)
    n = table.num_rows
    parts = []
    for i in range(0, n, CHUNK):
        out = bundle.predict({k: v[i:i + CHUNK] for k, v in inputs.items()})
        parts.append(np.stack([out[t] for t in task_names], axis=1))
    return np.concatenate(parts) if parts else np.zeros((0, len(task_names)), dtype=np.float32)


def check_compatible(bundle: LoadedBundle, spec: RankerSpec) -> None:
    """Raise DataError unless the spec's data has every bundle feature and the bundle every spec task."""
    missing = [t for t in spec.task_names() if t not in bundle.manifest.task_names]
    if missing:
        raise D.DataError(f"bundle {bundle.path} has no head for task(s) {missing} of spec {spec.name!r}; "
                          f"it has {bundle.manifest.task_names}")
    spec_features = {f.name for f in (*spec.features.categorical, *spec.features.numeric)}
    absent = [f.name for f in bundle.manifest.features.all() if f.name not in spec_features]
    if absent:
        raise D.DataError(f"bundle {bundle.path} needs feature column(s) {absent} that spec {spec.name!r} "
                          "does not list")


def load_eval_table(spec: RankerSpec, whole: bool) -> pa.Table:
    """The rows to evaluate on: all of the spec's data (whole) or the test split of its time split."""
    table = D.load_table(spec)
    return D.sort_by_time(table, spec.data) if whole else D.split_by_time(table, spec.data).test


def evaluate_bundle(bundle: LoadedBundle, table: pa.Table, spec: RankerSpec) -> dict:
    """Metrics of a bundle on `table` (rows of a request contiguous), as in the training report."""
    check_compatible(bundle, spec)
    preds = bundle_predictions(bundle, table, spec.task_names())
    return prediction_metrics(preds, D.raw_labels(table, spec), D.request_index(table, spec), spec)
