"""Train spec variants through the normal training path, many seeds at a time, and collect metrics.

A job is (spec file, data path, dotted overrides such as {"model.arch": "shared_bottom",
"train.seed": 3}). Each job runs exactly what `training.fit.train.train()` runs (set_seed, build_model,
fit, evaluate) except that the prepared data is reused across jobs with the same data and feature
spec in one worker process; tests/bench/quality/test_runner.py checks that this gives the same metrics as
`train()`. Jobs run in a pool of spawned worker processes with one torch thread each.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

from training.data.columns import expand_numeric_patterns
from training.evaluation import inference
from training.evaluation.metrics import ndcg_at_k, prediction_metrics
from training.fit import train as T
from training.spec import RankerSpec, load_spec
from training.spec.model import ARCH_KEYS

_PREPARED: dict[str, T.Prepared] = {}  # per worker process: data key -> prepared splits
J, R = TypeVar("J"), TypeVar("R")


@dataclass(frozen=True)
class Job:
    spec_path: str
    data_path: str | None = None
    overrides: dict = field(default_factory=dict)
    label: str = ""
    kind: str = "ours"  # "ours" (training.fit.train), "curves" (bench.quality.mtl_eval), "deepctr", "rechub", "gbdt"
    group_column: str | None = None  # also report NDCG@k per value of this column (e.g. user_id)
    options: dict = field(default_factory=dict)  # kind "curves": see bench/quality/mtl_eval.py


def with_overrides(spec: RankerSpec, overrides: dict) -> RankerSpec:
    """A validated copy of the spec with dotted keys replaced, e.g. {"model.expert_dropout": 0.3}.

    Overriding model.arch also drops the spec's architecture keys that mean nothing for the new
    arch (e.g. num_experts for shared_bottom), unless they are overridden too; overriding
    model.numeric_embedding drops numeric_bins and numeric_binned (the new choice's defaults apply).
    """
    raw = spec.model_dump()
    if "model.numeric_embedding" in overrides:  # numeric_bins / numeric_binned: filled in for the spec's own choice
        for key in ("numeric_bins", "numeric_binned"):
            if f"model.{key}" not in overrides:
                raw["model"][key] = None
    if "model.arch" in overrides:
        for key, (archs, _) in ARCH_KEYS.items():
            if overrides["model.arch"] not in archs and f"model.{key}" not in overrides:
                raw["model"][key] = None
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        if leaf not in node:
            raise KeyError(f"override {dotted!r}: no such spec field")
        node[leaf] = value
    return RankerSpec.model_validate(raw)


def job_spec(job: Job) -> RankerSpec:
    """The job's spec with its overrides, numeric patterns (`name: "x*"`) expanded as train() expands them."""
    spec, _ = expand_numeric_patterns(load_spec(job.spec_path, data_path=job.data_path))
    return with_overrides(spec, job.overrides)


def prepared(spec: RankerSpec) -> T.Prepared:
    """Prepared data, cached per (data, features, tasks, bias tower): other settings do not change it."""
    bias = spec.model.bias_tower.model_dump() if spec.model.bias_tower else None
    key = json.dumps([spec.data.model_dump(), spec.features.model_dump(), [t.model_dump() for t in spec.tasks], bias])
    if key not in _PREPARED:
        _PREPARED.clear()  # one dataset per worker at a time keeps memory flat
        _PREPARED[key] = T.prepare(spec)
    return _PREPARED[key]


def group_ndcg(spec: RankerSpec, prep: T.Prepared, preds: np.ndarray, column: str) -> float | None:
    """NDCG@k of the spec's combined score with the spec's gains, per value of `column` on test."""
    names = spec.task_names()
    e = prep.test
    score = sum(w * preds[:, names.index(t)] for t, w in spec.score_weights().items())
    gain = sum(w * np.nan_to_num(e.raw_labels[:, names.index(t)]) for t, w in spec.gain_weights().items())
    values = prep.splits.test.column(column).to_numpy(zero_copy_only=False)
    _, group = np.unique(values, return_inverse=True)
    return ndcg_at_k(group.astype(np.int64), np.asarray(score, np.float64), np.asarray(gain, np.float64),
                     spec.eval.ndcg_k)


def run_ours(spec: RankerSpec, prep: T.Prepared) -> tuple[dict, list[dict], np.ndarray, dict]:
    """What training.fit.train.train() does after prepare(): (metrics, history, test predictions, extra);
    extra names the numeric features `ple_auto` binned."""
    T.set_seed(spec.train.seed)
    args = T.model_args(spec, prep.encoders, prep.train.numeric)
    model = T.build_model(args)
    history = T.fit(spec, prep, model, None, progress=False).history
    metrics = {split: T.evaluate(model, getattr(prep, split), spec, prep.scalers, prep.constants)
               for split in ("valid", "test")}
    preds = inference.predict(inference.export_heads(model, spec, prep.scalers), prep.test)
    extra = {}
    if args.numeric_binned is not None:
        extra["numeric_binned"] = [prep.encoders.numeric[j].name for j in args.numeric_binned]
    return metrics, history, preds, extra


def run_gbdt(spec: RankerSpec, prep: T.Prepared) -> tuple[dict, list[dict], np.ndarray]:
    """The GBDT baseline as training measures it (training/evaluation/baseline.py): (metrics, [], test predictions)."""
    from training.evaluation import baseline as B

    model = B.fit_gbdt(prep.train, prep.valid, spec, spec.train.seed)
    metrics = {}
    for split in ("valid", "test"):
        e = getattr(prep, split)
        preds = model.predict(e, spec, prep.scalers)
        metrics[split] = prediction_metrics(preds, e.raw_labels, e.request, spec)
    return metrics, [], preds


def run_job(job: Job) -> dict:
    """One training run; returns a JSON-able record (metrics, per-epoch seconds, epochs, wall time)."""
    torch.set_num_threads(1)
    spec = job_spec(job)
    if job.kind in ("deepctr", "rechub"):  # pointwise MMoEs: their task lists take binary and regression heads only
        spec = spec.without_ranking()
    prep = prepared(spec)
    t0 = time.perf_counter()
    extra: dict = {}
    if job.kind == "deepctr":
        from bench.quality.deepctr_mmoe import run_deepctr

        metrics, history, preds = run_deepctr(spec, prep)
    elif job.kind == "rechub":
        from bench.quality.rechub_mmoe import run_rechub

        metrics, history, preds = run_rechub(spec, prep)
    elif job.kind == "gbdt":
        metrics, history, preds = run_gbdt(spec, prep)
    elif job.kind == "curves":
        from bench.quality.mtl_eval import run_curves

        metrics, history, preds, extra = run_curves(spec, prep, {"group_column": job.group_column, **job.options})
    else:
        metrics, history, preds, extra = run_ours(spec, prep)
    record = {"label": job.label, "overrides": job.overrides, "kind": job.kind, "metrics": metrics,
              "epochs": len(history), "epoch_seconds": [h["seconds"] for h in history],
              "best_epoch": int(np.argmin([h["valid_loss"] for h in history])) + 1 if history else None,
              "task_weights": history[-1].get("task_weights") if history else None,  # balancer weights, last epoch
              "head_best_epoch": history[-1].get("best_epoch") if history else None,  # each head's, on validation
              "train_seconds": time.perf_counter() - t0, **extra}
    if job.group_column:
        record[f"ndcg@{spec.eval.ndcg_k}_per_{job.group_column}"] = group_ndcg(spec, prep, preds, job.group_column)
    return record


def in_job_order(fn: Callable[[J], R], jobs: Sequence[J], workers: int) -> Iterator[R]:
    """fn over jobs, results in job order (so independent of the worker count): in this process for
    workers <= 1, else in a pool of `workers` spawned processes."""
    if workers <= 1:
        yield from map(fn, jobs)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(fn, jobs)


def run_jobs(jobs: Sequence[Job], workers: int = 2, log: Callable[[str], None] = print) -> list[dict]:
    """Run jobs in a spawned pool; records in job order."""
    out, t0 = [], time.perf_counter()
    for i, rec in enumerate(in_job_order(run_job, jobs, workers), start=1):
        out.append(rec)
        log(f"[{i}/{len(jobs)}] {rec['label']} {json.dumps(rec['overrides'])}: {rec['epochs']} epochs, "
            f"{rec['train_seconds']:.0f} s ({time.perf_counter() - t0:.0f} s elapsed)")
    return out
