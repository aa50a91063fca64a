"""Fit a multi-task ranker from a spec. Reads top to bottom:

    prepare()   Parquet -> validated, split tables -> encoders fitted on train -> arrays (in memory);
                prepare_data() picks it or the streamed path (training/streaming/: two passes, record
                batches, a shuffle buffer) by data.streaming
    fit()       Adam over shuffled batches (training/streaming/feed.py), early stopping on a validation
                criterion (per head too: training/fit/early_stopping.py); an optional bias tower in
                training only. Under torchrun every rank trains on its own rows, gradients are averaged
                (training/distributed/), validation covers the whole split and rank 0's decisions hold
    evaluate()  AUC / RMSE on observed labels, NDCG@k per request, gate statistics
    train()     all three, returning everything export needs (test metrics only when asked; rank 0 only)
"""

from __future__ import annotations

import copy
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from service.contract.features import FeatureEncoders
from training import data as D
from training.data import splits as S
from training.data.bias_inputs import BiasData, prepare_bias
from training.data.columns import expand_numeric_patterns
from training.data.interface import SplitRows, TrainingData
from training.distributed.context import Dist
from training.distributed.grad_sync import GradSync
from training.distributed.launch import local_threads, usable_cores
from training.evaluation import baseline as B
from training.evaluation.constant import Constant, constants_of
from training.evaluation.inference import EVAL_BATCH, export_heads, gate_report, predict
from training.evaluation.metrics import prediction_metrics
from training.fit.averaging import WeightAverage
from training.fit.early_stopping import HeadTracker, Stopper, combine_heads, head_metric, per_head_report
from training.fit.progress import EpochBar, epoch_progress
from training.fit.progress import write as progress_write
from training.fit.schedule import make_scheduler
from training.fit.threads import ThreadChooser
from training.modeling.args import ModelArgs
from training.modeling.bias_tower import training_graph
from training.modeling.grad_conflict import MGDAUB, PCGrad
from training.modeling.losses import (
    Balancer,
    FixedWeighting,
    GradNorm,
    MaskedTaskLosses,
    UncertaintyWeighting,
)
from training.modeling.model import build_model, shared_parameters, task_parameters
from training.modeling.numeric import binned_features, quantile_edges
from training.spec import RankerSpec
from training.spec.model import NEEDS_SHARING
from training.streaming.feed import Batch, EvalFeed, MemoryFeed, SplitTensors, StreamFeed
from training.streaming.prepare import choose_loading, prepare_stream

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """The in-memory run's TrainingData (training/data/interface.py): tables (for raw parity rows and windows),
    encoders, arrays.

    test is None when the spec has no test split (test_fraction 0, or no data.test file).
    """

    splits: S.Splits
    encoders: FeatureEncoders
    scalers: dict[str, D.LabelScaler]
    train: D.Encoded
    valid: D.Encoded
    test: D.Encoded | None
    bias: BiasData | None = None  # training-only bias-tower inputs (model.bias_tower)
    loading: str = "in memory"  # which data path ran, and why (prepare_data)
    constants: dict[str, Constant] = field(default_factory=dict)  # the training labels' constant baseline

    streamed = False  # the in-memory path (training/streaming/prepare.py's Streamed says True)

    def holdout(self) -> D.Encoded:
        """The rows a finished model is judged on: test, or valid without a test split."""
        return self.test if self.test is not None else self.valid

    def training_numerics(self) -> np.ndarray:
        return self.train.numeric

    def train_arrays(self) -> D.Encoded:
        return self.train

    def feeds(self, spec: RankerSpec, bias: BiasData | None, grouped: bool) -> tuple[MemoryFeed, EvalFeed]:
        generator = torch.Generator().manual_seed(spec.train.seed)
        feed = MemoryFeed(SplitTensors.of(self.train, bias.splits["train"] if bias else None, grouped),
                          spec.train.batch_size, generator, spec.train.seed)
        valid = EvalFeed(SplitTensors.of(self.valid, bias.splits["valid"] if bias else None, grouped), None,
                         EVAL_BATCH, grouped)
        return feed, valid


@dataclass
class Trained:
    spec: RankerSpec
    prepared: TrainingData
    args: ModelArgs
    model: nn.Module
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)  # {"valid": {...}} (+ "test" when asked for)
    train_seconds: float = 0.0
    init_summary: dict | None = None  # what a ModelInit (e.g. warm start) reported
    stopping: dict = field(default_factory=dict)  # fit's outcome: best epoch, per-head epochs
    baseline: dict | None = None  # eval.baseline: the GBDT's metrics on the same splits (evaluation/baseline.py)
    batch_rows: list[list[np.ndarray]] | None = None  # train(record_batches=True): per epoch, each batch's rows

    def warnings(self, metrics: dict | None = None) -> list[str]:
        """What looked wrong in the data (requests spanning splits, one-row requests, ...) and in each measured
        split of `metrics` (default: this run's torch metrics; the CLI passes the bundle's)."""
        splits = {k: v for k, v in (metrics or self.metrics).items() if k in ("valid", "test")}
        per_split = [f"{split} split: {w}" for split, m in splits.items() for w in m.get("warnings", [])]
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
    bias = prepare_bias(splits, spec.model.bias_tower) if spec.model.bias_tower else None
    return Prepared(splits=splits, encoders=encoders, scalers=scalers, **enc, bias=bias,
                    constants=constants_of(spec, enc["train"].raw_labels))


def prepare_data(spec: RankerSpec, progress: bool = True) -> TrainingData:
    """In memory (`prepare`) or streamed, as data.streaming says; logs which ran and why."""
    mode, why = choose_loading(spec)
    prep = prepare_stream(spec, why) if mode == "stream" else prepare(spec)
    if mode == "memory":
        prep.loading = f"in memory ({why})"
    logger.info("data: %s", prep.loading)
    if progress:
        progress_write(f"data: {prep.loading}")
    return prep


def model_args(spec: RankerSpec, encoders: FeatureEncoders, train_numeric: np.ndarray | None) -> ModelArgs:
    """The model's shape from the spec; keys that mean nothing for the arch are stored as None.

    `numeric_embedding: ple` fits its bin edges on train_numeric, the (N, F) encoded training numerics (a
    streamed run's row sample); `ple_auto` first picks the features to bin there (binned_features), unless
    `model.numeric_binned` names them.
    """
    m = spec.model
    edges, binned = None, None
    if m.numeric_embedding in ("ple", "ple_auto"):
        if train_numeric is None:
            if encoders.numeric:
                raise ValueError(f"model.numeric_embedding: {m.numeric_embedding} fits its bins on training numerics, "
                                 "and none were given")
            train_numeric = np.zeros((0, 0), dtype=np.float32)
        if m.numeric_embedding == "ple_auto":
            binned = chosen_binned(m.numeric_binned, encoders) if m.numeric_binned is not None \
                else binned_features(train_numeric)
            logger.info("numeric_embedding ple_auto bins %s", [encoders.numeric[j].name for j in binned] or "nothing")
            train_numeric = train_numeric[:, binned]
        edges = quantile_edges(train_numeric, m.numeric_bins)
    return ModelArgs(
        cardinalities=[f.cardinality for f in encoders.categorical], n_numeric=len(encoders.numeric),
        tasks=[t.name for t in spec.tasks], arch=m.arch, num_experts=m.num_experts,
        expert_hidden=list(m.expert_hidden), tower_hidden=list(m.tower_hidden),
        embedding_dim=m.embedding_dim, expert_dropout=m.expert_dropout, dropout=m.dropout,
        shared_experts=m.shared_experts, task_experts=m.task_experts, levels=m.levels,
        numeric_embedding=m.numeric_embedding, numeric_edges=edges, numeric_binned=binned,
        cross_layers=m.cross_layers,
    )


def chosen_binned(names: list[str], encoders: FeatureEncoders) -> list[int]:
    """The indices of `model.numeric_binned`'s features among the numeric features (DataError naming a stranger)."""
    numeric = [f.name for f in encoders.numeric]
    if unknown := [n for n in names if n not in numeric]:
        raise D.DataError(f"model.numeric_binned: {unknown} are not numeric features of this spec; they are "
                          f"{numeric}")
    return sorted(numeric.index(n) for n in set(names))


def make_balancer(spec: RankerSpec, model: nn.Module, graph: nn.Module) -> Balancer:
    """`model` is the pure model (what the tasks share); `graph` what is trained (model + bias tower)."""
    cfg, kind = spec.train, spec.train.loss_balancing
    weights = [t.weight for t in spec.tasks]
    if kind in NEEDS_SHARING and not hasattr(model, "shared_layer"):
        raise ValueError(f"loss_balancing {kind} needs what the tasks share; model.arch {spec.model.arch!r} shares nothing")
    if kind == "uncertainty":
        return UncertaintyWeighting([t.type for t in spec.tasks])
    if kind == "gradnorm":
        return GradNorm(len(spec.tasks), model.shared_layer(), alpha=cfg.gradnorm_alpha)
    if kind == "pcgrad":
        shared = {name for name, _ in shared_parameters(model, len(spec.tasks)).items()}
        prefix = "model." if graph is not model else ""
        return PCGrad(weights, dict(graph.named_parameters()), {prefix + n for n in shared}, seed=cfg.seed)
    if kind == "mgda":
        return MGDAUB(len(spec.tasks), model.representation(), cfg.mgda_normalization)
    return FixedWeighting(weights)


def make_optimizer(spec: RankerSpec, graph: nn.Module, balancer: Balancer,
                   model: nn.Module | None = None) -> torch.optim.Optimizer:
    """Adam; weight decay applies to the network only, never to the loss-balancing weights.

    A task with `lr_scale` != 1 gets its own group at lr * lr_scale: the parameters of `model` (the pure
    model inside `graph`; default graph itself) that only its output depends on (`task_parameters`, the
    parts per-task early stopping swaps). Everything else (shared experts, embeddings, a bias tower) keeps lr.
    """
    decay, lr = spec.train.weight_decay, spec.train.lr
    scaled: list[dict] = []
    taken: set[int] = set()
    for t, task in enumerate(spec.tasks):
        if task.lr_scale != 1.0:
            own = [p for p in task_parameters(model if model is not None else graph, t).values()]
            taken |= {id(p) for p in own}
            scaled.append({"params": own, "weight_decay": decay, "lr": lr * task.lr_scale, "task": task.name})
    groups = [{"params": [p for p in graph.parameters() if id(p) not in taken], "weight_decay": decay}, *scaled]
    if extra := list(balancer.parameters()):
        groups.append({"params": extra, "weight_decay": 0.0})
    return torch.optim.Adam(groups, lr=spec.train.lr)


def train_step(graph: nn.Module, losses: MaskedTaskLosses, balancer: Balancer, opt: torch.optim.Optimizer,
               batch: Batch, sync: GradSync | None = None,
               scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> tuple[torch.Tensor, ...]:
    """One optimizer step on one batch: forward, the balancer's backward, gradient averaging between
    ranks (sync), the step, the LR schedule, the balancer's own update. Returns per_task (T,), counts (T,), loss ()."""
    per_task, counts = losses(graph(*batch.inputs), batch.labels, batch.mask, batch.group)
    loss = balancer(per_task, counts)
    opt.zero_grad(set_to_none=True)
    balancer.backward(loss, per_task, counts)
    if sync is not None:
        sync()
    opt.step()
    if scheduler is not None:
        scheduler.step()
    balancer.after_step()
    return per_task, counts, loss


def train_epoch(parts: FitParts, batches: Iterator[Batch], steps: int, bar: EpochBar) -> tuple[torch.Tensor, int]:
    """`steps` optimizer steps over `batches`; returns (the (T,) mean training loss per task over every
    rank, the rows this rank trained on).

    The hot loop does no per-row Python and no per-step host sync beyond the (cheap) progress bar.
    Under torchrun every rank takes the same number of steps (the smallest share), and the gradients
    are averaged between backward and the optimizer step.
    """
    parts.graph.train()
    n_tasks = len(parts.losses.is_bce)
    sums, seen, rows = torch.zeros(n_tasks), torch.zeros(n_tasks), 0
    parts.requests = 0
    if parts.threads is not None:
        parts.threads.start_epoch()
    for step, batch in zip(range(steps), batches, strict=False):  # never pulls a batch beyond `steps`
        def one_step(batch: Batch = batch) -> tuple[torch.Tensor, ...]:
            return train_step(parts.graph, parts.losses, parts.balancer, parts.opt, batch, parts.sync,
                              parts.scheduler)

        per_task, counts, loss = parts.threads.run(step, one_step) if parts.threads else one_step()
        if parts.average is not None:
            parts.average.update()
        rows += len(batch.labels)
        parts.requests += batch.requests
        if parts.batch_rows is not None:
            parts.batch_rows[-1].append(batch.rows)
        with torch.no_grad():
            sums += per_task * counts
            seen += counts
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        bar.update(1)
    parts.dist.all_sum(sums), parts.dist.all_sum(seen)
    parts.lists = seen  # (T,) over every rank: observed rows per task; requests with signal for ranking tasks
    return sums / seen.clamp_min(1), rows


@dataclass
class Fit:
    """What `fit` returns: the per-epoch logs, the stopping summary (see fit_epochs) and, when asked for,
    each epoch's batches as row positions."""

    history: list[dict]
    stopping: dict
    batch_rows: list[list[np.ndarray]] | None = None


def fit(spec: RankerSpec, prep: TrainingData, model: nn.Module, log_path: Path | None = None,
        progress: bool = True, dist: Dist | None = None, record_batches: bool = False) -> Fit:
    """Train in place; restores the best validation epoch (per head, with per_task_stopping: combine).

    record_batches keeps every batch's row positions per epoch (Fit.batch_rows; tests compare ranks' shares).
    """
    epochs = fit_epochs(spec, prep, model, log_path, progress, dist=dist, record_batches=record_batches)
    history = []
    while True:
        try:
            history.append(next(epochs))
        except StopIteration as end:  # the generator's return value: (stopping, batch rows)
            return Fit(history, *end.value)


@dataclass
class FitParts:
    """What one fit trains and measures with: the graph (model [+ bias tower]), losses, balancer, optimizer,
    the training feed and validation rows, and (under torchrun) the gradient averaging."""

    graph: nn.Module
    losses: MaskedTaskLosses
    balancer: Balancer
    opt: torch.optim.Optimizer
    feed: MemoryFeed | StreamFeed  # what TrainingData.feeds gives
    valid: EvalFeed
    dist: Dist
    sync: GradSync | None = None
    batch_rows: list | None = None  # when a list: per epoch, a list of every batch's row positions
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None  # train.lr_schedule, stepped per batch
    average: WeightAverage | None = None  # train.ema_epochs: validated and kept in place of the raw weights
    requests: int = 0  # this rank's requests in the epoch's batches (batches of whole requests)
    lists: torch.Tensor | None = None  # (T,) the epoch's counts per task, summed over the ranks
    threads: ThreadChooser | None = None  # train.threads unset, one process: each epoch's thread count by timing

    @classmethod
    def build(cls, spec: RankerSpec, prep: TrainingData, model: nn.Module, dist: Dist) -> FitParts:
        graph = training_graph(model, spec, prep.bias)
        balancer = make_balancer(spec, model, graph)
        bias = prep.bias if graph is not model else None
        grouped = any(t.listwise for t in spec.tasks)  # a ranking task: batches of whole requests
        feed, valid = prep.feeds(spec, bias, grouped)
        sync = GradSync(graph, list(balancer.parameters()), dist, spec.train.embedding_grads) if dist.active else None
        opt = make_optimizer(spec, graph, balancer, model)
        steps = (len(prep.train) // dist.world + spec.train.batch_size - 1) // spec.train.batch_size  # per rank
        average = WeightAverage(graph, spec.train.ema_epochs * steps) if spec.train.ema_epochs else None
        threads = None
        if spec.train.threads is None and not dist.active and usable_cores() >= 2:
            threads = ThreadChooser(local_threads(None), usable_cores())
        return cls(graph, MaskedTaskLosses([t.loss for t in spec.tasks]), balancer, opt, feed, valid, dist, sync,
                   scheduler=make_scheduler(spec.train, opt, steps), average=average, threads=threads)


def run_epoch(spec: RankerSpec, prep: TrainingData, model: nn.Module, parts: FitParts, epoch: int,
              progress: bool) -> tuple[dict, dict]:
    """Train one epoch, then measure on validation; returns (the epoch's log, validation metrics)."""
    cfg, names, dist = spec.train, spec.task_names(), parts.dist
    mine = parts.feed.rows_for(epoch, dist.rank, dist.world)
    steps = dist.min_int((mine + cfg.batch_size - 1) // cfg.batch_size)
    with epoch_progress(steps, f"epoch {epoch}/{cfg.epochs}", progress) as bar:
        t0 = time.perf_counter()
        batches = parts.feed.batches(epoch, dist.rank, dist.world)
        if parts.batch_rows is not None:
            parts.batch_rows.append([])
        try:
            train_loss, rows = train_epoch(parts, batches, steps, bar)
        finally:
            batches.close()  # stops a stream's reader thread when a rank stops early
        seconds, t0 = time.perf_counter() - t0, time.perf_counter()
        if parts.average is not None:
            parts.average.swap_in()  # validated (and kept, when best) in place of the raw weights
        n = int(dist.all_sum(torch.tensor([rows], dtype=torch.int64)).item())
        valid_total, valid_tasks = validation_loss(parts.graph, parts.valid, parts.losses, spec, dist)
        metrics = validation_metrics(model, prep, spec, dist)
        # Every rank computed the same numbers from the gathered predictions; rank 0's are the ones that
        # decide (early stopping, per-head epochs), so no rounding difference can split the ranks.
        valid_total, valid_tasks, metrics = dist.broadcast((valid_total, valid_tasks, metrics))
        bar.set_postfix({"valid": metrics_text(spec, metrics)}, refresh=True)
    log = {"epoch": epoch, "seconds": round(seconds, 3), "samples_per_second": round(n / seconds, 1),
           "valid_seconds": round(time.perf_counter() - t0, 3),
           "train_loss": dict(zip(names, train_loss.tolist(), strict=True)),
           "valid_loss": valid_total, "valid_task_loss": valid_tasks,
           "valid_metrics": {t: {k: v for k, v in m.items() if k != "observed"} for t, m in metrics["tasks"].items()},
           "valid_ndcg": metrics.get(f"ndcg@{spec.eval.ndcg_k}"),
           "task_weights": dict(zip(names, parts.balancer.task_weights().tolist(), strict=True)),
           "threads": torch.get_num_threads()}  # the epoch's intra-op threads (chosen by timing when unset)
    if listwise := [(j, t.name) for j, t in enumerate(spec.tasks) if t.listwise]:
        requests = int(dist.all_sum(torch.tensor([parts.requests], dtype=torch.int64)).item())
        log["ranking_requests"] = {name: {"requests": requests, "skipped": requests - int(parts.lists[j])}
                                   for j, name in listwise}  # skipped: one row, or no positive gain
    if dist.active:
        log["ranks"] = dist.world
        log["sync_bytes_per_step"] = parts.sync.counted.per_step()
    if progress:
        progress_write(f"epoch {epoch}: valid loss {valid_total:.5f}, {metrics_text(spec, metrics)} "
                   f"({n / seconds:,.0f} samples/s)")
    return log, metrics


def fit_epochs(spec: RankerSpec, prep: TrainingData, model: nn.Module, log_path: Path | None = None,
               progress: bool = True, outcome: dict | None = None, dist: Dist | None = None,
               record_batches: bool = False) -> Generator[dict, None, tuple[dict, list | None]]:
    """`fit`, one epoch at a time: yields each epoch's log (also appended to log_path).

    Stops after spec.train.epochs or when the early-stopping criterion (train.early_stopping_metric)
    has not improved for more than early_stopping_patience epochs; then restores the best epoch's
    weights, combines heads if asked, and sets eval mode. `outcome` gets {"best_epoch", "metric",
    "heads": each head's best epoch and metrics, "combined": per-head swap results or None}.
    Under torchrun (`dist`), every rank runs this; validation gathers every rank's predictions and
    every decision follows rank 0's numbers. Returns (the generator's value: `fit` takes it) the stopping
    summary and, with record_batches, per epoch its batches' row positions. `outcome`, when given, gets the
    summary too, for callers that read the epochs one at a time (the benchmarks' curves).
    """
    dist = dist or Dist()
    parts = FitParts.build(spec, prep, model, dist)
    parts.batch_rows = [] if record_batches else None
    stopper, heads, best_state = Stopper(spec), HeadTracker(spec, model), None
    try:
        for epoch in range(1, spec.train.epochs + 1):
            log, metrics = run_epoch(spec, prep, model, parts, epoch, progress)
            if stopper.update(epoch, log["valid_loss"], metrics):
                best_state = copy.deepcopy(model.state_dict())
            heads.update(epoch, metrics)
            log["best_epoch"] = {t: heads.best_epoch.get(t) for t in spec.task_names()}  # each head's, so far
            _append_jsonl(log_path, log)
            if parts.average is not None:
                parts.average.swap_out()
            yield log
            if stopper.should_stop():
                break
    finally:
        parts.balancer.close()
        if parts.sync is not None:
            parts.sync.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    combined = None
    if spec.train.per_task_stopping == "combine" and stopper.best_epoch is not None:
        combined = combine_heads(model, heads, stopper.best_epoch,
                                 lambda: dist.broadcast(validation_metrics(model, prep, spec, dist)))
    stopping = {"best_epoch": stopper.best_epoch, "metric": spec.train.early_stopping_metric,
                "heads": per_head_report(heads, stopper.best_epoch), "combined": combined}
    if outcome is not None:
        outcome.update(stopping)
    return stopping, parts.batch_rows


def metrics_text(spec: RankerSpec, metrics: dict) -> str:
    """'click auc 0.7912, watch_time rmse_log1p 0.8123, ...': each head's validation metric."""
    parts = []
    for t in spec.tasks:
        name, value, _ = head_metric(metrics["tasks"][t.name], t.label_transform)
        parts.append(f"{t.name} {name} {'n/a' if value is None else f'{value:.4f}'}")
    return ", ".join(parts)


def _append_jsonl(path: Path | None, record: dict) -> None:
    if path is not None:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


@torch.no_grad()
def validation_loss(graph: nn.Module, data: EvalFeed, losses: MaskedTaskLosses,
                    spec: RankerSpec, dist: Dist | None = None) -> tuple[float, dict[str, float]]:
    """Fixed-weight sum over tasks of masked losses on a split (comparable across epochs and
    balancers), and the per-task losses. With a bias tower the loss includes its logit: the labels
    carry the bias, and this is the loss that was trained. Under torchrun each rank sums its shard."""
    dist = dist or Dist()
    graph.eval()
    weights = torch.tensor([t.weight for t in spec.tasks])
    totals, counts = torch.zeros(len(weights)), torch.zeros(len(weights))
    for batch in data.batches(dist.rank, dist.world):
        per_task, c = losses(graph(*batch.inputs), batch.labels, batch.mask, batch.group)
        totals += per_task * c
        counts += c
    dist.all_sum(totals), dist.all_sum(counts)
    per_task = totals / counts.clamp_min(1)
    return float((weights * per_task).sum()), dict(zip(spec.task_names(), per_task.tolist(), strict=True))


def validation_metrics(model: nn.Module, prep: TrainingData, spec: RankerSpec, dist: Dist | None = None) -> dict:
    """Per-task AUC / RMSE and NDCG@k of the served heads (no bias tower) on the whole validation split;
    under torchrun each rank predicts its shard and every rank gathers all predictions."""
    dist, e = dist or Dist(), prep.valid
    positions, shard = e.shard(dist.rank, dist.world)
    preds = dist.gather_rows(positions, predict(export_heads(model, spec, prep.scalers), shard), len(e))
    return prediction_metrics(preds, e.raw_labels, e.request, spec)


def evaluate(model: nn.Module, e: SplitRows, spec: RankerSpec, scalers: dict[str, D.LabelScaler],
             constants: dict[str, Constant] | None = None) -> dict:
    """Task metrics (beside the constant baseline) and NDCG of the model's heads on one split, plus gate
    statistics of gated models."""
    out = prediction_metrics(predict(export_heads(model, spec, scalers), e), e.raw_labels, e.request, spec,
                             constants=constants)
    return {**out, **gate_report(model, e, spec.task_names())}


# Called with (model, args, encoders) before fitting, e.g. a warm start; returns a summary for reports.
ModelInit = Callable[[nn.Module, ModelArgs, FeatureEncoders], dict]


def train(spec: RankerSpec, out_dir: Path | None = None, progress: bool = True,
          init: ModelInit | None = None, eval_test: bool = False, dist: Dist | None = None,
          record_batches: bool = False) -> Trained:
    """Prepare data, fit, evaluate on valid (and on test with eval_test). Logs go to out_dir/train_log.jsonl.

    Test metrics are opt-in, so that choosing a model by its reported numbers never tunes on test.
    Numeric feature patterns (`name: "*"`) become the columns they match; Trained.spec lists them.
    Under torchrun (`dist`) every rank fits; only rank 0 evaluates afterwards (the others return a
    Trained without metrics: rank 0 alone exports and publishes). record_batches keeps each epoch's
    batches as row positions (Trained.batch_rows), for tests of what each rank trained on.
    """
    dist = dist or Dist()
    spec, notes = expand_numeric_patterns(spec)
    for note in notes if dist.is_leader else []:
        progress_write(note, file=sys.stderr)
    set_seed(spec.train.seed)
    torch.set_num_threads(local_threads(spec.train.threads))
    prep = prepare_data(spec, progress and dist.is_leader)
    args = model_args(spec, prep.encoders, prep.training_numerics())
    model = build_model(args)
    init_summary = init(model, args, prep.encoders) if init else None
    dist.broadcast_parameters(model)
    if dist.active:
        torch.manual_seed(spec.train.seed + dist.rank)  # dropout masks differ between ranks
    log_path = None
    if out_dir is not None and dist.is_leader:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        log_path = Path(out_dir) / "train_log.jsonl"
        log_path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    fitted = fit(spec, prep, model, log_path, progress and dist.is_leader, dist, record_batches)
    seconds = time.perf_counter() - t0
    run = {"history": fitted.history, "stopping": fitted.stopping, "batch_rows": fitted.batch_rows}
    if not dist.is_leader:
        return Trained(spec=spec, prepared=prep, args=args, model=model, train_seconds=seconds,
                       init_summary=init_summary, **run)
    evaluated = ("valid", "test") if eval_test and prep.test is not None else ("valid",)
    metrics = {split: evaluate(model, getattr(prep, split), spec, prep.scalers, prep.constants) for split in evaluated}
    baseline = None
    if (arrays := prep.train_arrays()) is not None and B.wanted(spec, len(arrays)):  # the GBDT needs the arrays
        baseline = B.measure(spec, arrays, prep.valid, {s: getattr(prep, s) for s in evaluated}, prep.scalers)
    return Trained(spec=spec, prepared=prep, args=args, model=model, metrics=metrics, train_seconds=seconds,
                   init_summary=init_summary, baseline=baseline, **run)
