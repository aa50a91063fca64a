"""Fit a multi-task ranker from a spec. Reads top to bottom:

    prepare()   Parquet -> validated, split tables -> encoders fitted on train -> arrays
    fit()       Adam over shuffled contiguous batches, early stopping on validation loss
    evaluate()  AUC / RMSE on observed labels, NDCG@k per request, gate statistics
    train()     all three, returning everything export needs (test metrics only when asked)
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from service.contract.features import FeatureEncoders
from training import data as D
from training.data import splits as S
from training.evaluation.inference import EVAL_BATCH, export_heads, gate_weights, predict
from training.evaluation.metrics import gate_stats, prediction_metrics
from training.fit.progress import EpochBar, epoch_progress
from training.fit.progress import write as progress_write
from training.modeling.losses import (
    Balancer,
    FixedWeighting,
    GradNorm,
    MaskedTaskLosses,
    UncertaintyWeighting,
)
from training.modeling.model import ModelArgs, build_model
from training.spec import RankerSpec


@dataclass
class Prepared:
    """The data side of a run: tables (for raw parity rows and windows), encoders, arrays.

    test is None when the spec has no test split (test_fraction 0, or no data.test file).
    """

    splits: S.Splits
    encoders: FeatureEncoders
    scalers: dict[str, D.LabelScaler]
    train: D.Encoded
    valid: D.Encoded
    test: D.Encoded | None

    def holdout(self) -> D.Encoded:
        """The rows a finished model is judged on: test, or valid without a test split."""
        return self.test if self.test is not None else self.valid


@dataclass
class Trained:
    spec: RankerSpec
    prepared: Prepared
    args: ModelArgs
    model: nn.Module
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)  # {"valid": {...}} (+ "test" when asked for)
    train_seconds: float = 0.0
    init_summary: dict | None = None  # what a ModelInit (e.g. warm start) reported

    def warnings(self) -> list[str]:
        """What looked wrong in the data: requests spanning splits, one-row requests, ..."""
        per_split = [f"{split} split: {w}" for split, m in self.metrics.items() for w in m.get("warnings", [])]
        return [*self.prepared.splits.warnings, *per_split]


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare(spec: RankerSpec) -> Prepared:
    splits = S.load_splits(spec)
    encoders = D.fit_encoders(splits.train, spec)
    scalers = D.fit_label_scalers(splits.train, spec)
    enc = {name: None if (t := getattr(splits, name)) is None else D.encode(t, encoders, spec, scalers)
           for name in ("train", "valid", "test")}
    return Prepared(splits=splits, encoders=encoders, scalers=scalers, **enc)


def model_args(spec: RankerSpec, encoders: FeatureEncoders) -> ModelArgs:
    m = spec.model
    return ModelArgs(
        cardinalities=[f.cardinality for f in encoders.categorical], n_numeric=len(encoders.numeric),
        tasks=[t.name for t in spec.tasks], arch=m.arch, num_experts=m.num_experts,
        expert_hidden=list(m.expert_hidden), tower_hidden=list(m.tower_hidden),
        embedding_dim=m.embedding_dim, expert_dropout=m.expert_dropout, dropout=m.dropout,
    )


def make_balancer(spec: RankerSpec, model: nn.Module) -> Balancer:
    cfg = spec.train
    if cfg.loss_balancing == "uncertainty":
        return UncertaintyWeighting([t.type for t in spec.tasks])
    if cfg.loss_balancing == "gradnorm":
        if not hasattr(model, "shared_layer"):
            raise ValueError(f"loss_balancing gradnorm needs a shared layer; model.arch {spec.model.arch!r} has none")
        return GradNorm(len(spec.tasks), model.shared_layer(), alpha=cfg.gradnorm_alpha)
    return FixedWeighting([t.weight for t in spec.tasks])


def make_optimizer(spec: RankerSpec, model: nn.Module, balancer: Balancer) -> torch.optim.Optimizer:
    """Adam; weight decay applies to the model only, never to the loss-balancing weights."""
    groups = [{"params": list(model.parameters()), "weight_decay": spec.train.weight_decay}]
    if extra := list(balancer.parameters()):
        groups.append({"params": extra, "weight_decay": 0.0})
    return torch.optim.Adam(groups, lr=spec.train.lr)


def as_tensors(e: D.Encoded) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(e.categorical), torch.from_numpy(e.numeric),
            torch.from_numpy(e.labels), torch.from_numpy(e.mask))


def train_epoch(model: nn.Module, losses: MaskedTaskLosses, balancer: Balancer, opt: torch.optim.Optimizer,
                data: tuple[torch.Tensor, ...], perm: torch.Tensor, batch_size: int, bar: EpochBar) -> torch.Tensor:
    """One pass over the rows in `perm` order; returns the (T,) mean training loss per task.

    The hot loop does no per-row Python and no per-step host sync beyond the (cheap) progress bar.
    """
    model.train()
    cat, num, labels, mask = (x[perm] for x in data)  # one gather per epoch, then zero-copy slices
    steps = (len(perm) + batch_size - 1) // batch_size
    sums, seen = torch.zeros(labels.shape[1]), torch.zeros(labels.shape[1])
    for step in range(steps):
        sl = slice(step * batch_size, (step + 1) * batch_size)
        per_task, counts = losses(model(cat[sl], num[sl]), labels[sl], mask[sl])
        loss = balancer(per_task, counts)
        opt.zero_grad(set_to_none=True)
        balancer.before_backward(per_task, counts)
        loss.backward()
        opt.step()
        balancer.after_step()
        with torch.no_grad():
            sums += per_task * counts
            seen += counts
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        bar.update(1)
    return sums / seen.clamp_min(1)


def fit(spec: RankerSpec, prep: Prepared, model: nn.Module, log_path: Path | None = None,
        progress: bool = True) -> list[dict]:
    """Train in place; restores the weights of the best validation epoch. Returns per-epoch logs."""
    return list(fit_epochs(spec, prep, model, log_path, progress))


def fit_epochs(spec: RankerSpec, prep: Prepared, model: nn.Module, log_path: Path | None = None,
               progress: bool = True) -> Iterator[dict]:
    """`fit`, one epoch at a time: yields each epoch's log (also appended to log_path).

    Stops after spec.train.epochs or when validation loss has not improved for more than
    early_stopping_patience epochs; then restores the best epoch's weights and sets eval mode.
    """
    cfg, names = spec.train, spec.task_names()
    losses = MaskedTaskLosses([t.loss for t in spec.tasks])
    balancer = make_balancer(spec, model)
    opt = make_optimizer(spec, model, balancer)
    generator = torch.Generator().manual_seed(cfg.seed)
    data = as_tensors(prep.train)
    n = len(data[0])
    steps = (n + cfg.batch_size - 1) // cfg.batch_size
    best, best_state, stale = float("inf"), None, 0
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        with epoch_progress(steps, f"epoch {epoch}/{cfg.epochs}", progress) as bar:
            train_loss = train_epoch(model, losses, balancer, opt, data, torch.randperm(n, generator=generator),
                                     cfg.batch_size, bar)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        valid_total, valid_tasks = validation_loss(model, prep.valid, losses, spec)
        log = {"epoch": epoch, "seconds": round(seconds, 3), "samples_per_second": round(n / seconds, 1),
               "valid_seconds": round(time.perf_counter() - t0, 3),
               "train_loss": dict(zip(names, train_loss.tolist(), strict=True)),
               "valid_loss": valid_total, "valid_task_loss": valid_tasks,
               "task_weights": dict(zip(names, balancer.task_weights().tolist(), strict=True))}
        _append_jsonl(log_path, log)
        if progress:
            progress_write(f"epoch {epoch}: valid loss {valid_total:.5f} ({n / seconds:,.0f} samples/s)")
        improved = valid_total < best - 1e-6
        if improved:
            best, best_state, stale = valid_total, copy.deepcopy(model.state_dict()), 0
        yield log
        stale = 0 if improved else stale + 1
        if stale > cfg.early_stopping_patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()


def _append_jsonl(path: Path | None, record: dict) -> None:
    if path is not None:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


@torch.no_grad()
def validation_loss(model: nn.Module, e: D.Encoded, losses: MaskedTaskLosses,
                    spec: RankerSpec) -> tuple[float, dict[str, float]]:
    """Fixed-weight sum over tasks of masked losses on a split (comparable across epochs and
    balancers), and the per-task losses."""
    model.eval()
    weights = torch.tensor([t.weight for t in spec.tasks])
    cat, num, labels, mask = as_tensors(e)
    totals, counts = torch.zeros(len(weights)), torch.zeros(len(weights))
    for i in range(0, len(cat), EVAL_BATCH):
        sl = slice(i, i + EVAL_BATCH)
        per_task, c = losses(model(cat[sl], num[sl]), labels[sl], mask[sl])
        totals += per_task * c
        counts += c
    per_task = totals / counts.clamp_min(1)
    return float((weights * per_task).sum()), dict(zip(spec.task_names(), per_task.tolist(), strict=True))


def evaluate(model: nn.Module, e: D.Encoded, spec: RankerSpec, scalers: dict[str, D.LabelScaler]) -> dict:
    out = prediction_metrics(predict(export_heads(model, spec, scalers), e), e.raw_labels, e.request, spec)
    gates = gate_weights(model, e)
    if gates is not None:
        out["gates"] = gate_stats(gates, spec.task_names())
    return out


# Called with (model, args, encoders) before fitting, e.g. a warm start; returns a summary for reports.
ModelInit = Callable[[nn.Module, ModelArgs, FeatureEncoders], dict]


def train(spec: RankerSpec, out_dir: Path | None = None, progress: bool = True,
          init: ModelInit | None = None, eval_test: bool = False) -> Trained:
    """Prepare data, fit, evaluate on valid (and on test with eval_test). Logs go to out_dir/train_log.jsonl.

    Test metrics are opt-in, so that choosing a model by its reported numbers never tunes on test.
    """
    set_seed(spec.train.seed)
    torch.set_num_threads(spec.train.threads or os.cpu_count() or 1)
    prep = prepare(spec)
    args = model_args(spec, prep.encoders)
    model = build_model(args)
    init_summary = init(model, args, prep.encoders) if init else None
    log_path = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        log_path = Path(out_dir) / "train_log.jsonl"
        log_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    history = fit(spec, prep, model, log_path, progress)
    seconds = time.perf_counter() - t0
    evaluated = ("valid", "test") if eval_test and prep.test is not None else ("valid",)
    metrics = {split: evaluate(model, getattr(prep, split), spec, prep.scalers) for split in evaluated}
    return Trained(spec=spec, prepared=prep, args=args, model=model, history=history, metrics=metrics,
                   train_seconds=seconds, init_summary=init_summary)
