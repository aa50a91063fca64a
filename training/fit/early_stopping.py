"""Early stopping on a chosen validation criterion, and per-task early stopping (Caruana, 1997).

`Stopper` decides when to stop and which epoch is best, watching one criterion: the fixed-weight
validation loss, the validation NDCG@k, or one task's metric.

`HeadTracker` follows every head's own metric (AUC for binary tasks, RMSE on the training scale
for regression: log1p labels are judged in log1p space) and keeps a copy of each head's own
parameters (`model.task_parts`) from its best epoch. `combine_heads` then puts each head's parts
from its own best epoch over the shared parts of the best overall epoch, and keeps a head's swap
only where that head's validation metric improves: a tower is trained against the shared layers of
its own epoch, so the combination can also hurt, and the validation split decides per head.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from training.spec import RankerSpec


def metric_name(task_type: str, transform: str) -> str:
    """The metric a head is judged by: auc, ndcg (ranking heads), rmse, or rmse_log1p for log1p labels."""
    if task_type in ("binary", "ranking"):
        return "auc" if task_type == "binary" else "ndcg"
    return "rmse_log1p" if transform == "log1p" else "rmse"


def head_metric(task_metrics: dict, transform: str) -> tuple[str, float | None, bool]:
    """(metric name, value, higher is better) of one task's validation metrics."""
    kind = "binary" if "auc" in task_metrics else "ranking" if "ndcg" in task_metrics else "regression"
    name = metric_name(kind, transform)
    return name, task_metrics.get(name), name in ("auc", "ndcg")


def head_values(spec: RankerSpec, metrics: dict) -> dict[str, float | None]:
    """task -> its head metric from `prediction_metrics` output, sign-adjusted so higher is better."""
    out = {}
    for t in spec.tasks:
        _, value, higher = head_metric(metrics["tasks"][t.name], t.label_transform)
        out[t.name] = None if value is None else (value if higher else -value)
    return out


class Stopper:
    """Tracks the best epoch of one validation criterion and says when patience has run out."""

    def __init__(self, spec: RankerSpec) -> None:
        self.spec = spec
        self.metric = spec.train.early_stopping_metric
        self.patience = spec.train.early_stopping_patience
        self.best, self.best_epoch, self.stale = float("-inf"), None, 0

    def score(self, valid_loss: float, metrics: dict) -> float:
        """Higher is better: -loss, NDCG@k, or the task's AUC / -RMSE. A missing value never improves."""
        if self.metric == "loss":
            value = -valid_loss
        elif self.metric == "ndcg":
            value = metrics.get(f"ndcg@{self.spec.eval.ndcg_k}")
        else:
            value = head_values(self.spec, metrics)[self.metric]
        return float("-inf") if value is None else float(value)

    def update(self, epoch: int, valid_loss: float, metrics: dict) -> bool:
        """Record an epoch; True when it is the new best."""
        score = self.score(valid_loss, metrics)
        if score > self.best + 1e-6 or self.best_epoch is None:
            self.best, self.best_epoch, self.stale = score, epoch, 0
            return True
        self.stale += 1
        return False

    def should_stop(self) -> bool:
        return self.stale > self.patience


@dataclass
class HeadTracker:
    """Each head's best validation epoch and a copy of its own parameters from that epoch."""

    spec: RankerSpec
    model: nn.Module
    best: dict[str, float] = field(default_factory=dict)  # task -> best sign-adjusted metric
    best_epoch: dict[str, int] = field(default_factory=dict)
    parts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # task -> {name: tensor}
    curve: dict[str, list[float | None]] = field(default_factory=dict)  # task -> value per epoch

    def update(self, epoch: int, metrics: dict) -> None:
        for t, (task, value) in enumerate(head_values(self.spec, metrics).items()):
            self.curve.setdefault(task, []).append(value)
            if value is not None and value > self.best.get(task, float("-inf")) + 1e-9:
                self.best[task], self.best_epoch[task] = value, epoch
                self.parts[task] = own_state(self.model, t)


def own_state(model: nn.Module, t: int) -> dict[str, torch.Tensor]:
    """A copy of the state_dict entries that belong to task t alone."""
    prefixes = tuple(model.task_parts(t))
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(prefixes)}


def combine_heads(model: nn.Module, tracker: HeadTracker, joint_epoch: int,
                  validate: Callable[[], dict]) -> dict:
    """Swap in each head's own parts from its best epoch; keep a swap only where it helps on validation.

    `model` holds the best overall epoch's weights; `validate()` returns validation metrics
    (prediction_metrics) of the model as it is. A head's parts affect only that head's output, so
    every head is decided from one validation pass with all swaps in place. Returns, per head: its
    best epoch, the validation metric at the joint epoch and combined, and whether it was swapped.
    """
    spec = tracker.spec
    before = head_values(spec, validate())
    joint_state = copy.deepcopy(model.state_dict())
    candidates = [t.name for t in spec.tasks if tracker.best_epoch.get(t.name, joint_epoch) != joint_epoch]
    state = model.state_dict()
    for task in candidates:
        state.update(tracker.parts[task])
    model.load_state_dict(state)
    after = head_values(spec, validate()) if candidates else before
    kept = [t for t in candidates if after[t] is not None and before[t] is not None and after[t] > before[t]]
    state = model.state_dict()
    for t, task in enumerate(spec.task_names()):
        if task in candidates and task not in kept:
            prefixes = tuple(model.task_parts(t))
            state.update({k: v for k, v in joint_state.items() if k.startswith(prefixes)})
    model.load_state_dict(state)
    return {task: {"best_epoch": tracker.best_epoch.get(task), "joint": _unsign(spec, task, before[task]),
                   "combined": _unsign(spec, task, after[task] if task in kept else before[task]),
                   "swapped": task in kept} for task in spec.task_names()}


def per_head_report(tracker: HeadTracker, joint_epoch: int) -> dict[str, dict]:
    """Per head: its best epoch, its metric there and at the joint epoch (validation, natural sign).

    The gain is what stopping that head at its own best epoch would have given on validation with
    the whole model of that epoch, an upper bound on what combining heads can reach.
    """
    spec, out = tracker.spec, {}
    for t in spec.tasks:
        curve = tracker.curve.get(t.name, [])
        joint = curve[joint_epoch - 1] if joint_epoch and len(curve) >= joint_epoch else None
        own = tracker.best.get(t.name)
        out[t.name] = {"metric": metric_name(t.type, t.label_transform), "best_epoch": tracker.best_epoch.get(t.name),
                       "at_joint": _unsign(spec, t.name, joint), "at_best": _unsign(spec, t.name, own),
                       "gain": None if joint is None or own is None else own - joint}
    return out


def _unsign(spec: RankerSpec, task: str, value: float | None) -> float | None:
    binary = next(t.type == "binary" for t in spec.tasks if t.name == task)
    return None if value is None else (value if binary else -value)
