"""The LambdaMART baseline beside every model that ranks requests: LightGBM's lambdarank, fitted on the
model's own encoded inputs (tree_inputs.py), the same split and the same NDCG gain, so a report says
whether the network ranks better than the standard learning-to-rank trees (`eval.baseline`).

It needs nothing of the task list: the gain (training.evaluation.served.gains: spec.gain_weights() over the
labels, null = 0) is its label and the request index its groups. LightGBM wants integer labels below
len(label_gain):

    gains all integers in [0, 30]   the gain is the label, label_gain = 0..30: linear gains, as our NDCG
    any other gains                 RELEVANCE_LEVELS levels from the quantiles of the positive training gains
                                    (0 stays 0), each level's label_gain its mean training gain; the
                                    reports say so

Early stopping watches NDCG@k (eval.ndcg_k) on the validation split. Two fits on the same rows are equal
(deterministic, row-wise histograms, the spec's seed), so `ranker evaluate --baseline` refits exactly the
model training measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from training import data as D
from training.distributed.launch import local_threads
from training.evaluation.metrics import ndcg_at_k
from training.evaluation.served import gains
from training.evaluation.tree_inputs import categorical_columns, gbdt_inputs
from training.spec import RankerSpec

NAME = "LambdaMART"
WHAT = "LightGBM lambdarank"
MAX_LABEL = 30  # an integer gain up to this is its own label (label_gain 0..30)
RELEVANCE_LEVELS = 5  # other gains: this many levels of positive gain
MAX_TREES = 500
PATIENCE = 20  # trees without a better validation NDCG before stopping (the GBDT's n_iter_no_change)
FIT_KEYS = ("kind", "seconds", "iterations", "relevance")  # measure's record beside its splits


@dataclass(frozen=True)
class Relevance:
    """How gains become LightGBM's integer labels.

    edges: None = each gain is its own label; else the inner quantiles of the positive training gains,
    level = 1 + how many edges a positive gain reaches (gain <= 0 is level 0). label_gain: the gain LightGBM
    credits each label with.
    """

    edges: tuple[float, ...] | None
    label_gain: tuple[float, ...]

    @classmethod
    def of(cls, gain: np.ndarray) -> Relevance:
        """From the (N,) training gains."""
        if np.all((gain >= 0) & (gain <= MAX_LABEL) & (gain == np.round(gain))):
            return cls(None, tuple(float(i) for i in range(MAX_LABEL + 1)))
        positive = gain[gain > 0]
        qs = np.quantile(positive, np.arange(1, RELEVANCE_LEVELS) / RELEVANCE_LEVELS) if positive.size else []
        edges = tuple(float(q) for q in np.unique(qs))
        levels = _levels(gain, edges)
        means = [float(gain[levels == i].mean()) if (levels == i).any() else 0.0 for i in range(1, len(edges) + 2)]
        return cls(edges, (0.0, *np.maximum.accumulate(means).tolist()))

    def labels(self, gain: np.ndarray) -> np.ndarray:
        """(N,) int32 labels of (N,) gains (integer gains past MAX_LABEL, seen outside training, clipped)."""
        if self.edges is None:
            return np.clip(np.round(gain), 0, MAX_LABEL).astype(np.int32)
        return _levels(gain, self.edges).astype(np.int32)

    def record(self) -> dict:
        """For the manifest: {"labels": "gain"} or {"labels": "levels", "edges", "label_gain"}."""
        if self.edges is None:
            return {"labels": "gain"}
        return {"labels": "levels", "edges": list(self.edges), "label_gain": list(self.label_gain)}


def _levels(gain: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    return np.where(gain > 0, 1 + np.searchsorted(np.asarray(edges), gain, side="right"), 0)


def relevance_text(record: dict) -> str | None:
    """What the labels were, in words, for the reports; None when they were the gains themselves."""
    if record.get("labels") != "levels":
        return None
    return (f"gains mapped to {len(record['label_gain']) - 1} relevance levels by the quantiles of the positive "
            "training gains, 0 staying 0 (they are not integers in 0..30)")


def grouped(e: D.Encoded) -> tuple[np.ndarray, np.ndarray]:
    """(order (N,), group sizes (G,)): rows sorted by request, as LightGBM wants them, and each request's size."""
    order = np.argsort(e.request, kind="stable")
    _, sizes = np.unique(e.request[order], return_counts=True)
    return order, sizes


@dataclass
class LambdaMART:
    """A fitted lambdarank model, its relevance mapping and what the fit cost."""

    model: object  # lightgbm.LGBMRanker
    relevance: Relevance
    seconds: float

    @property
    def iterations(self) -> int:
        return int(self.model.best_iteration_ or self.model.n_estimators_)

    def scores(self, e: D.Encoded) -> np.ndarray:
        """(N,) ranking scores in row order (the best iteration's trees)."""
        return self.model.predict(gbdt_inputs(e)).astype(np.float64)

    def ndcg(self, e: D.Encoded, spec: RankerSpec) -> float | None:
        """NDCG@k over e's requests with the spec's gain: metrics.ndcg_at_k, as every model is judged."""
        if e.request is None:
            return None
        return ndcg_at_k(e.request, self.scores(e), gains(spec, e.raw_labels), spec.eval.ndcg_k)


def _estimator(spec: RankerSpec, relevance: Relevance) -> object:
    import lightgbm  # 1.5 s to import (pandas): only where a ranker is fitted

    return lightgbm.LGBMRanker(
        objective="lambdarank", n_estimators=MAX_TREES, learning_rate=0.1, num_leaves=31,
        label_gain=list(relevance.label_gain), random_state=spec.train.seed,
        n_jobs=local_threads(spec.train.threads), deterministic=True, force_row_wise=True, verbose=-1)


def fit(train: D.Encoded, valid: D.Encoded, spec: RankerSpec) -> LambdaMART | None:
    """Fit on the training requests, early-stopped on the validation NDCG@k; None without requests, without
    a request of two or more rows, or without a positive training gain (nothing to rank)."""
    import lightgbm

    if train.request is None or not len(train):
        return None
    gain = gains(spec, train.raw_labels)
    order, sizes = grouped(train)
    if not (gain > 0).any() or sizes.max() < 2:
        return None
    t0 = time.perf_counter()
    relevance = Relevance.of(gain)
    fit_args: dict = {"group": sizes, "categorical_feature": list(range(categorical_columns(train)))}
    valid_gain = gains(spec, valid.raw_labels) if valid.request is not None else np.zeros(0)
    if (valid_gain > 0).any():
        v_order, v_sizes = grouped(valid)
        fit_args.update(eval_X=(gbdt_inputs(valid)[v_order],), eval_y=(relevance.labels(valid_gain)[v_order],),
                        eval_group=[v_sizes], eval_at=[spec.eval.ndcg_k],
                        callbacks=[lightgbm.early_stopping(PATIENCE, first_metric_only=True, verbose=False)])
    model = _estimator(spec, relevance).fit(gbdt_inputs(train)[order], relevance.labels(gain)[order], **fit_args)
    return LambdaMART(model, relevance, time.perf_counter() - t0)


def measure(spec: RankerSpec, train: D.Encoded, valid: D.Encoded, splits: dict[str, D.Encoded]) -> dict | None:
    """{"kind": "lambdamart", "seconds", "iterations", "relevance", split: {"ndcg@k"}} for each split given;
    None when there is nothing to rank (no data.request_id, or no positive gain)."""
    fitted = fit(train, valid, spec)
    if fitted is None:
        return None
    k = f"ndcg@{spec.eval.ndcg_k}"
    out: dict = {"kind": "lambdamart", "seconds": round(fitted.seconds, 2), "iterations": fitted.iterations,
                 "relevance": fitted.relevance.record()}
    for name, e in splits.items():
        out[name] = {k: fitted.ndcg(e, spec)}
    return out
