"""Score a dataset with a published bundle (onnxruntime, the served graph) and measure it.

The retrain gates compare a candidate and the serving model with this, on the same holdout rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from service.contract.bundle import LoadedBundle
from service.contract.calibration import calibrate
from service.profiles import compile_weights
from training import data as D
from training.data import splits as S
from training.evaluation import baseline as B
from training.evaluation.constant import Constant
from training.evaluation.metrics import prediction_metrics
from training.evaluation.served import eval_weights, gains, heads_of, profile_ndcg
from training.spec import RankerSpec

CHUNK = 65_536


@dataclass(frozen=True)
class HeadScores:
    """One model's outputs on N rows, (N, T) float32 in the order of the task names asked for.

    raw: the graph's own head outputs (what the model fit, and what offline metrics judge it by);
    served: the same heads calibrated as the manifest says, as the server returns them.
    """

    raw: np.ndarray
    served: np.ndarray

    @classmethod
    def concat(cls, parts: list[HeadScores], n_tasks: int) -> HeadScores:
        if not parts:
            empty = np.zeros((0, n_tasks), dtype=np.float32)
            return cls(empty, empty)
        return cls(np.concatenate([p.raw for p in parts]), np.concatenate([p.served for p in parts]))


def bundle_scores(bundle: LoadedBundle, table: pa.Table, task_names: list[str]) -> HeadScores:
    """The bundle's raw and served heads for every row of `table` (one session.run per chunk)."""
    inputs = D.feature_inputs(table, bundle.manifest.features)
    parts = []
    for i in range(0, table.num_rows, CHUNK):
        out = bundle.predict_rows({k: v[i:i + CHUNK] for k, v in inputs.items()}, calibrated=False)
        raw = np.stack([out[t] for t in task_names], axis=1)
        served = np.stack([calibrate(bundle.manifest.task(t).calibration, out[t]) for t in task_names], axis=1)
        parts.append(HeadScores(raw, served))
    return HeadScores.concat(parts, len(task_names))


def holdout_scores(bundle: LoadedBundle, tables: Iterable[pa.Table], task_names: list[str]) -> HeadScores:
    """bundle_scores over a split read a table at a time (one table in memory, many streamed)."""
    return HeadScores.concat([bundle_scores(bundle, t, task_names) for t in tables], len(task_names))


def bundle_predictions(bundle: LoadedBundle, table: pa.Table, task_names: list[str]) -> np.ndarray:
    """(N, T) served (calibrated) outputs of the bundle for every row of `table`, columns in task_names order."""
    return bundle_scores(bundle, table, task_names).served


def bundle_constants(bundle: LoadedBundle) -> dict[str, Constant]:
    """task -> the training split's constant prediction, as the manifest recorded it (none in older bundles)."""
    return {t.name: Constant(t.train_label.mean, t.train_label.mean_log1p)
            for t in bundle.manifest.tasks if t.train_label is not None}


def scored_metrics(bundle: LoadedBundle, scores: HeadScores, labels: np.ndarray, request: np.ndarray | None,
                   spec: RankerSpec) -> dict:
    """prediction_metrics of a bundle's heads on one split, its own and as served, beside the constant baseline.

    The one measurement of a bundle on rows: `ranker train` (valid, and test with --eval-test) and
    `ranker evaluate` both report exactly this (with profile_metrics).
    """
    return prediction_metrics(scores.raw, labels, request, spec, served=scores.served,
                              constants=bundle_constants(bundle))


def profile_metrics(bundle: LoadedBundle, scores: HeadScores, labels: np.ndarray, request: np.ndarray,
                    spec: RankerSpec) -> dict[str, float | None]:
    """NDCG@k per served profile (`eval.weights`, else `eval.score_weights`) over the served heads, ranked
    as the server ranks; raises WeightsError for a weights file the server would refuse."""
    weights, _ = eval_weights(spec)
    compiled = compile_weights(weights, bundle.manifest.tasks)
    return profile_ndcg(compiled, heads_of(scores.served, spec.task_names()), gains(spec, labels), request,
                        spec.eval.ndcg_k)


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


def load_eval_table(spec: RankerSpec, data: str | None = None) -> pa.Table:
    """The rows to evaluate on: all of `data` (any file, directory or glob training would accept),
    or else the spec's test split (its data.test file, or the test part of its split)."""
    if data is not None:
        # Rows to score as they are: no split, so no split column is needed.
        whole = spec.model_copy(update={"data": spec.data.model_copy(update={"split_column": None})})
        return D.load_table(whole, data)
    if spec.data.test is not None:
        return D.load_table(spec, spec.data.test)
    test = None if spec.data.without_test else S.load_splits(spec).test
    if test is None:
        raise D.DataError(f"spec {spec.name!r} has no test split (no data.test file, test_fraction 0, or no "
                          "'test' rows in its split_column); evaluate on other rows with --data PATH")
    return test


def gbdt_beside(bundle: LoadedBundle, table: pa.Table, spec: RankerSpec, force: bool | None = None) -> dict | None:
    """The GBDT baseline's metrics on `table`, with "lambdamart" (the LambdaMART baseline's NDCG@k) when the
    data has requests: fitted on the spec's train split (early-stopped on its valid split) with the bundle's
    encoders, as in training. None when neither `force` nor the spec's eval.baseline asks for it;
    {"error": ...} when the spec asks (auto) but its data is not there."""
    if force is False or (force is None and spec.eval.baseline == "none"):
        return None
    try:
        splits = S.load_splits(spec)
    except D.DataError as e:
        if force:
            raise D.DataError(f"--baseline fits the GBDT on the spec's train split: {e}") from e
        return {"error": f"not measured: the spec's training data cannot be read ({e})"}
    if force is None and not B.wanted(spec, splits.train.num_rows):
        return None
    scalers = D.fit_label_scalers(splits.train, spec)
    train, valid, rows = (D.encode(t, bundle.manifest.features, spec, scalers) for t in (splits.train, splits.valid, table))
    return B.split_baseline(B.measure(spec, train, valid, {"rows": rows}, scalers), "rows")


def evaluate_bundle(bundle: LoadedBundle, table: pa.Table, spec: RankerSpec, baseline: bool | None = None) -> dict:
    """Metrics of a bundle on `table` (scored_metrics: as in the training report, requests grouped by value),
    NDCG@k per served profile ("profiles"), and the baselines' metrics on the same rows ("baseline": the
    GBDT's, and the LambdaMART's NDCG@k in it; `baseline` None = as the spec says). Only the spec's served
    tasks are measured: the bundle has no `serve: false` head."""
    spec = spec.served()
    check_compatible(bundle, spec)
    scores = bundle_scores(bundle, table, spec.task_names())
    labels, request = D.raw_labels(table, spec), D.request_index(table, spec)
    metrics = scored_metrics(bundle, scores, labels, request, spec)
    if request is not None:
        metrics["profiles"] = profile_metrics(bundle, scores, labels, request, spec)
    if (gbdt := gbdt_beside(bundle, table, spec, baseline)) is not None:
        metrics["baseline"] = gbdt
    return metrics
