"""Fit a multi-task ranker from a spec. Reads top to bottom:

    prepare()   Parquet -> validated, time-split tables -> encoders fitted on train -> arrays
    fit()       Adam over shuffled contiguous batches, early stopping on validation loss
    evaluate()  AUC / RMSE on observed labels, NDCG@k per request, gate statistics
    train()     all three, returning everything export needs
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from service.features import FeatureEncoders
from training import data as D
from training.losses import FixedWeighting, MaskedTaskLosses, UncertaintyWeighting
from training.metrics import gate_stats, prediction_metrics
from training.model import ExportHeads, MMoE, ModelArgs, build_model
from training.spec import RankerSpec

EVAL_BATCH = 16_384


@dataclass
class Prepared:
    """The data side of a run: tables (for raw parity rows and windows), encoders, arrays."""

    splits: D.Splits
    encoders: FeatureEncoders
    scalers: dict[str, D.LabelScaler]
    train: D.Encoded
    valid: D.Encoded
    test: D.Encoded


@dataclass
class Trained:
    spec: RankerSpec
    prepared: Prepared
    args: ModelArgs
    model: nn.Module
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)  # {"valid": {...}, "test": {...}}
    train_seconds: float = 0.0


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare(spec: RankerSpec) -> Prepared:
    table = D.load_table(spec)
    splits = D.split_by_time(table, spec.data)
    encoders = D.fit_encoders(splits.train, spec)
    scalers = D.fit_label_scalers(splits.train, spec)
    enc = {name: D.encode(getattr(splits, name), encoders, spec, scalers) for name in ("train", "valid", "test")}
    return Prepared(splits=splits, encoders=encoders, scalers=scalers, **enc)


def model_args(spec: RankerSpec, encoders: FeatureEncoders) -> ModelArgs:
    m = spec.model
    return ModelArgs(
        cardinalities=[f.cardinality for f in encoders.categorical], n_numeric=len(encoders.numeric),
        tasks=[t.name for t in spec.tasks], arch=m.arch, num_experts=m.num_experts,
        expert_hidden=list(m.expert_hidden), tower_hidden=list(m.tower_hidden),
        embedding_dim=m.embedding_dim, expert_dropout=m.expert_dropout, dropout=m.dropout,
    )


def make_balancer(spec: RankerSpec) -> nn.Module:
    if spec.train.loss_balancing == "uncertainty":
        return UncertaintyWeighting([t.type for t in spec.tasks])
    if spec.train.loss_balancing == "fixed":
        return FixedWeighting([t.weight for t in spec.tasks])
    raise NotImplementedError(f"loss_balancing {spec.train.loss_balancing!r} is not implemented yet")


def as_tensors(e: D.Encoded) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(e.categorical), torch.from_numpy(e.numeric),
            torch.from_numpy(e.labels), torch.from_numpy(e.mask))


def fit(spec: RankerSpec, prep: Prepared, model: nn.Module, log_path: Path | None = None,
        progress: bool = True) -> list[dict]:
    """Train in place; restores the weights of the best validation epoch. Returns per-epoch logs."""
    cfg = spec.train
    losses = MaskedTaskLosses([t.loss for t in spec.tasks])
    balancer = make_balancer(spec)
    params = list(model.parameters()) + list(balancer.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(cfg.seed)
    cat, num, labels, mask = as_tensors(prep.train)
    n, bs = len(cat), cfg.batch_size
    steps = (n + bs - 1) // bs
    best, best_state, stale, history = float("inf"), None, 0, []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        # One gather per epoch, then every batch is a zero-copy slice.
        perm = torch.randperm(n, generator=generator)
        e_cat, e_num, e_lab, e_mask = cat[perm], num[perm], labels[perm], mask[perm]
        running = torch.zeros(len(spec.tasks))
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress, leave=False,
                   mininterval=0.5, unit="batch")
        for step in bar:
            sl = slice(step * bs, (step + 1) * bs)
            per_task, counts = losses(model(e_cat[sl], e_num[sl]), e_lab[sl], e_mask[sl])
            loss = balancer(per_task, counts)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += per_task.detach()
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        seconds = time.perf_counter() - t0
        valid_loss = validation_loss(model, prep.valid, losses, spec)
        log = {"epoch": epoch, "seconds": round(seconds, 3), "samples_per_second": round(n / seconds, 1),
               "train_loss": dict(zip(spec.task_names(), (running / steps).tolist(), strict=True)),
               "valid_loss": valid_loss, "task_weights": balancer.task_weights().tolist()}
        history.append(log)
        if log_path is not None:
            with open(log_path, "a") as f:
                f.write(json.dumps(log) + "\n")
        if progress:
            tqdm.write(f"epoch {epoch}: valid loss {valid_loss:.5f} ({n / seconds:,.0f} samples/s)")
        if valid_loss < best - 1e-6:
            best, best_state, stale = valid_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale > cfg.early_stopping_patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


@torch.no_grad()
def validation_loss(model: nn.Module, e: D.Encoded, losses: MaskedTaskLosses, spec: RankerSpec) -> float:
    """Sum over tasks of fixed-weight masked losses on a split (comparable across epochs)."""
    model.eval()
    weights = torch.tensor([t.weight for t in spec.tasks])
    cat, num, labels, mask = as_tensors(e)
    totals, counts = torch.zeros(len(weights)), torch.zeros(len(weights))
    for i in range(0, len(cat), EVAL_BATCH):
        sl = slice(i, i + EVAL_BATCH)
        per_task, c = losses(model(cat[sl], num[sl]), labels[sl], mask[sl])
        totals += per_task * c
        counts += c
    return float((weights * totals / counts.clamp_min(1)).sum())


def export_heads(model: nn.Module, spec: RankerSpec, scalers: dict[str, D.LabelScaler]) -> ExportHeads:
    scale = [(s.transform, s.mean, s.std) if (s := scalers.get(t.name)) else ("none", 0.0, 1.0)
             for t in spec.tasks]
    return ExportHeads(model, [t.type for t in spec.tasks], scale).eval()


@torch.no_grad()
def predict(heads: ExportHeads, e: D.Encoded) -> np.ndarray:
    """Natural-unit outputs (N, T), exactly the function that is exported."""
    cat, num = torch.from_numpy(e.categorical), torch.from_numpy(e.numeric)
    parts = [torch.stack(heads(cat[i:i + EVAL_BATCH], num[i:i + EVAL_BATCH]), dim=1)
             for i in range(0, len(cat), EVAL_BATCH)]
    return torch.cat(parts).numpy()


@torch.no_grad()
def gate_weights(model: nn.Module, e: D.Encoded, max_rows: int = 50_000) -> np.ndarray | None:
    """(T, N, E) eval-mode gate weights on up to max_rows rows; None for gateless models."""
    if not isinstance(model, MMoE):
        return None
    rows = slice(0, min(len(e), max_rows))
    _, gates = model(torch.from_numpy(e.categorical[rows]), torch.from_numpy(e.numeric[rows]), return_gates=True)
    return gates.numpy()


def evaluate(model: nn.Module, e: D.Encoded, spec: RankerSpec, scalers: dict[str, D.LabelScaler]) -> dict:
    out = prediction_metrics(predict(export_heads(model, spec, scalers), e), e.raw_labels, e.request, spec)
    gates = gate_weights(model, e)
    if gates is not None:
        out["gates"] = gate_stats(gates, spec.task_names())
    return out


def train(spec: RankerSpec, out_dir: Path | None = None, progress: bool = True) -> Trained:
    """Prepare data, fit, evaluate on valid and test. Logs go to out_dir/train_log.jsonl."""
    set_seed(spec.train.seed)
    torch.set_num_threads(spec.train.threads or os.cpu_count() or 1)
    prep = prepare(spec)
    args = model_args(spec, prep.encoders)
    model = build_model(args)
    log_path = None
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        log_path = Path(out_dir) / "train_log.jsonl"
        log_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    history = fit(spec, prep, model, log_path, progress)
    seconds = time.perf_counter() - t0
    metrics = {split: evaluate(model, getattr(prep, split), spec, prep.scalers) for split in ("valid", "test")}
    return Trained(spec=spec, prepared=prep, args=args, model=model, history=history, metrics=metrics,
                   train_seconds=seconds)
