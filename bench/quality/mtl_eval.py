"""Runs that record what the multi-task benchmarks need beyond `runner.run_ours`.

A job of kind "curves" (bench/quality/runner.py) trains through `training.train.fit_epochs` and,
after every epoch, scores the *test* split with the model of that epoch, so one run gives:
  - the test metrics at the best overall epoch (the model `per_task_stopping: off` exports),
  - the test metric of each head at its own best validation epoch (what stopping that head early
    would have given: the upper bound of per-task early stopping),
  - the final test metrics after the run's own per_task_stopping (e.g. `combine`).
Every scoring also ranks with the served profile: the heads combined by service/profiles.py with a
weights file's default profile, score statistics from the scored split as the manifest would hold,
NDCG@k per request or per value of a group column (e.g. per user). With a truth column (the biased
demo data's `true_click_prob`), it also measures NDCG@k of the served ranking against that truth.

Job options: {"weights": path of a weights.yaml, "profiles": [names] (default: the file's default
profile; scores of the first are `served_ndcg*`, of the others `served_ndcg*:<name>`), "truth_column":
column, "group_column": column}.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from service.contract.bundle import ScoreStats, TaskInfo
from service.profiles import compile_weights, parse_weights
from training import data as D
from training.data import splits as S
from training.evaluation import inference
from training.evaluation.metrics import ndcg_at_k, prediction_metrics, score_stats
from training.fit import train as T
from training.fit.early_stopping import head_metric
from training.spec import RankerSpec


def served_score(preds: np.ndarray, spec: RankerSpec, weights: str, profile: str | None = None) -> np.ndarray:
    """(N,) score of the served profile over natural-unit heads (N, T), as the server combines them."""
    tasks = [TaskInfo(name=t.name, type=t.type, group=t.group, output=t.name, label_transform=t.label_transform,
                      score_stats=ScoreStats(**score_stats(preds[:, j]))) for j, t in enumerate(spec.tasks)]
    compiled = compile_weights(parse_weights(Path(weights).read_bytes(), source=str(weights)), tasks)
    chosen = compiled.profile(profile)
    if chosen is None:
        raise KeyError(f"{weights}: no profile {profile!r}")
    return chosen.combine({t.name: preds[:, j] for j, t in enumerate(spec.tasks)})


def groups(prep: T.Prepared, column: str | None) -> np.ndarray:
    """(N,) dense group index of each test row: the request, or the value of `column`."""
    if column is None:
        return prep.test.request
    values = prep.splits.test.column(column).to_numpy(zero_copy_only=False)
    return np.unique(values, return_inverse=True)[1].astype(np.int64)


def truth_of(spec: RankerSpec, prep: T.Prepared, column: str) -> np.ndarray:
    """The truth column for the test rows, read beside the spec's columns and split the same way."""
    table = D.dataset(spec.data.path).to_table()
    test = S.split_table(table, spec.data).test
    for key in (spec.data.request_id, spec.data.item_id):
        if not test.column(key).equals(prep.splits.test.column(key)):
            raise ValueError(f"truth column {column!r}: rows do not line up with the test split ({key})")
    return test.column(column).cast(pa.float64()).to_numpy()


def test_scores(spec: RankerSpec, prep: T.Prepared, model, options: dict, truth: np.ndarray | None) -> dict:  # noqa: ANN001
    """Every scalar the benchmarks read, for the model as it is, on the test split."""
    e = prep.test
    preds = inference.predict(inference.export_heads(model, spec, prep.scalers), e)
    m = prediction_metrics(preds, e.raw_labels, e.request, spec)
    out: dict = {}
    for t in spec.tasks:  # each head's metric as early stopping judges it (log1p labels: RMSE in log1p)
        name, value, _ = head_metric(m["tasks"][t.name], t.label_transform)
        out[t.name] = value
        if name == "rmse_log1p":
            out[f"{t.name}:rmse"] = m["tasks"][t.name]["rmse"]
    gain = sum(w * np.nan_to_num(e.raw_labels[:, spec.task_names().index(t)]) for t, w in spec.gain_weights().items())
    k, group = spec.eval.ndcg_k, groups(prep, options.get("group_column"))
    for i, profile in enumerate(options.get("profiles") or [None]) if options.get("weights") else ():
        suffix = "" if i == 0 else f":{profile}"  # the first profile is "the served profile"
        score = served_score(preds, spec, options["weights"], profile)
        out[f"served_ndcg{suffix}"] = ndcg_at_k(group, score, np.asarray(gain, np.float64), k)
        if truth is not None:
            out[f"served_ndcg_true{suffix}"] = ndcg_at_k(e.request, score, truth, k)
    eval_score = sum(w * preds[:, spec.task_names().index(t)] for t, w in spec.score_weights().items())
    out["eval_ndcg"] = ndcg_at_k(group, np.asarray(eval_score, np.float64), np.asarray(gain, np.float64), k)
    return out


def run_curves(spec: RankerSpec, prep: T.Prepared, options: dict) -> tuple[dict, list[dict], np.ndarray, dict]:
    """Train like train() does, scoring the test split after every epoch and at the end."""
    T.set_seed(spec.train.seed)
    model = T.build_model(T.model_args(spec, prep.encoders, prep.train.numeric))
    truth = truth_of(spec, prep, options["truth_column"]) if options.get("truth_column") else None
    outcome: dict = {}
    history, curve = [], []
    for log in T.fit_epochs(spec, prep, model, None, progress=False, outcome=outcome):
        history.append(log)
        curve.append(test_scores(spec, prep, model, options, truth))
    final = test_scores(spec, prep, model, options, truth)
    metrics = {split: T.evaluate(model, getattr(prep, split), spec, prep.scalers) for split in ("valid", "test")}
    preds = inference.predict(inference.export_heads(model, spec, prep.scalers), prep.test)
    extra = {"curve": curve, "final": final, "stopping": outcome, "best_epoch": outcome["best_epoch"]}
    return metrics, history, preds, extra
