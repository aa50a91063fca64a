"""Non-neural baselines beside every model, fitted on the model's own encoded inputs and the same split, so
a report shows whether the multi-task network earns its keep (`eval.baseline`):

    GBDT        one scikit-learn HistGradientBoosting model per task (this module)
    LambdaMART  LightGBM's lambdarank on the NDCG gain, when the data has requests (lambdamart.py)

Inputs (tree_inputs.py): the categorical codes (as tree categories, the rarest sharing one) and the
standardized numerics, exactly the arrays the network reads. GBDT targets: each task's observed labels
(regression on the trained scale, mapped back to label units as the exported heads are). Early stopping
watches the validation split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from training import data as D
from training.distributed.launch import local_threads
from training.evaluation import lambdamart as L
from training.evaluation.metrics import prediction_metrics
from training.evaluation.tree_inputs import RARE_CODE, gbdt_inputs  # noqa: F401  (RARE_CODE: re-exported)
from training.spec import RankerSpec

AUTO_MAX_TRAIN_ROWS = 1_000_000  # eval.baseline auto: fit the GBDT below this many training rows
BASELINE_NAME = "GBDT"


def wanted(spec: RankerSpec, train_rows: int) -> bool:
    """Whether the spec asks for the GBDT baseline on a training split of train_rows rows."""
    mode = spec.eval.baseline
    return mode == "gbdt" or (mode == "auto" and train_rows < AUTO_MAX_TRAIN_ROWS)


@dataclass
class GBDTBaseline:
    """One fitted HistGradientBoosting model per task (None where the task had no labels to fit)."""

    models: dict[str, HistGradientBoostingClassifier | HistGradientBoostingRegressor | None]  # pointwise tasks
    seconds: float

    def predict(self, e: D.Encoded, spec: RankerSpec, scalers: dict[str, D.LabelScaler]) -> np.ndarray:
        """(N, T) natural-unit predictions: probabilities for binary tasks, label units for regression."""
        x = gbdt_inputs(e)
        out = np.full((len(e), len(spec.tasks)), np.nan)
        for j, t in enumerate(spec.tasks):
            model = self.models.get(t.name)
            if model is None:
                continue
            if t.type == "binary":
                out[:, j] = model.predict_proba(x)[:, 1]
            else:
                s = scalers[t.name]
                z = model.predict(x) * s.std + s.mean
                out[:, j] = np.expm1(z).clip(min=0.0) if s.transform == "log1p" else z
        return out


def _estimator(binary: bool, seed: int) -> HistGradientBoostingClassifier | HistGradientBoostingRegressor:
    kind = HistGradientBoostingClassifier if binary else HistGradientBoostingRegressor
    return kind(max_iter=500, learning_rate=0.1, early_stopping=True, n_iter_no_change=20,
                random_state=seed)


def fit_gbdt(train: D.Encoded, valid: D.Encoded, spec: RankerSpec, seed: int = 0) -> GBDTBaseline:
    """Fit one model per task on its observed training labels, early-stopped on its validation labels."""
    t0 = time.perf_counter()
    x_train, x_valid = gbdt_inputs(train), gbdt_inputs(valid)
    n_cat = train.categorical.shape[1]
    categorical = np.arange(x_train.shape[1]) < n_cat
    models = {}
    with threadpool_limits(limits=local_threads(spec.train.threads)):
        for j, t in enumerate(spec.tasks):
            if t.listwise:  # a ranking head has no pointwise counterpart
                models[t.name] = None
                continue
            seen, seen_valid = train.mask[:, j], valid.mask[:, j]
            y = train.labels[seen, j]
            if seen.sum() < 2 or (t.type == "binary" and np.unique(y).size < 2):
                models[t.name] = None
                continue
            model = _estimator(t.type == "binary", seed).set_params(categorical_features=categorical)
            fit_args = {}
            if seen_valid.any():
                fit_args = {"X_val": x_valid[seen_valid], "y_val": valid.labels[seen_valid, j]}
            models[t.name] = model.fit(x_train[seen], y, **fit_args)
    return GBDTBaseline(models, time.perf_counter() - t0)


def measure(spec: RankerSpec, train: D.Encoded, valid: D.Encoded, splits: dict[str, D.Encoded],
            scalers: dict[str, D.LabelScaler]) -> dict:
    """{"kind": "gbdt", "seconds", "iterations": {task: trees}, split: prediction_metrics} for each split given,
    and, when the data has requests, "lambdamart": lambdamart.measure's record on the same splits."""
    baseline = fit_gbdt(train, valid, spec, spec.train.seed)
    # It has no ranking head: its NDCG ranks by its pointwise heads (the spec's score weights, else its probabilities).
    spec = spec.model_copy(update={"eval": spec.eval.model_copy(update={"score_weights": spec.pointwise_score_weights()})})
    out: dict = {"kind": "gbdt", "seconds": round(baseline.seconds, 2),
                 "iterations": {t.name: None if (m := baseline.models[t.name]) is None else int(m.n_iter_)
                                for t in spec.label_tasks()}}
    for name, e in splits.items():
        out[name] = prediction_metrics(baseline.predict(e, spec, scalers), e.raw_labels, e.request, spec)
    if (ranker := L.measure(spec, train, valid, splits)) is not None:
        out["lambdamart"] = ranker
    return out


def split_baseline(record: dict | None, split: str) -> dict | None:
    """One split's baselines from a run's baseline record (baseline.measure: {split: GBDT metrics, "lambdamart":
    {split: {"ndcg@k"}, ...}}): the GBDT's metrics with "lambdamart" (its fit and NDCG on the split) inside,
    the shape `ranker evaluate` reports for its rows."""
    if not record or split not in record:
        return None
    out = dict(record[split])
    if split in (ranker := record.get("lambdamart") or {}):
        out["lambdamart"] = {**{k: ranker[k] for k in L.FIT_KEYS if k in ranker}, **ranker[split]}
    return out
