"""The models `ranker compare` trains: the spec's own (all tasks), one single-task model per target, and the
pairs of targets; each is the spec itself with fewer tasks (same features, model config, training and split).

A single-task target is a label task (binary or regression). A ranking task (or the default ranking head)
learns a gain over the other tasks' labels, so on its own it has nothing to learn from: it is kept in the
spec's model, as trained, and left out of the single-task and pair models (model.ranking_head: false), which
compare heads that each read their own label. An auxiliary task (`serve: false`) has no served metric and
cannot be a model's only task: it gets no single-task or pair model, and a spec with one also trains
"MTL without auxiliary tasks" (the spec's model minus those heads), so the matrix shows what they add.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from pydantic import ValidationError

from training.spec import RankerSpec, SpecError, TaskConfig
from training.spec.errors import format_errors
from training.spec.model import NEEDS_SHARING

ALL_TASKS = "MTL (all tasks)"
WITHOUT_AUXILIARY = "MTL without auxiliary tasks"


@dataclass(frozen=True)
class Variant:
    """One model of the comparison: its name and its tasks (None = the spec's own tasks, unchanged)."""

    name: str
    tasks: tuple[str, ...] | None = None
    kind: str = "mtl"  # "mtl" (the spec's model), "single" or "pair"


def single_task_targets(spec: RankerSpec) -> list[str]:
    """The tasks that get a single-task model: every served label task."""
    return [t.name for t in spec.label_tasks() if t.serve]


def single(task: str) -> Variant:
    return Variant(f"single-task {task}", (task,), "single")


def variants(spec: RankerSpec, pairs: bool = False) -> list[Variant]:
    """The spec's model (and without its auxiliary tasks, if any), one single-task model per target and, with
    pairs, one model per pair of targets."""
    targets = single_task_targets(spec)
    out = [Variant(ALL_TASKS)]
    if spec.auxiliary_tasks():
        out.append(Variant(WITHOUT_AUXILIARY, tuple(t.name for t in spec.tasks if t.serve)))
    out += [single(t) for t in targets]
    if pairs:
        out += [Variant(f"pair {a}+{b}", (a, b), "pair") for a, b in combinations(targets, 2)]
    return out


def metric_of(task: TaskConfig) -> tuple[str, bool]:
    """The metric a task is compared on and whether lower is better: AUC for a binary task; RMSE for a
    regression task (of log1p for a log1p-trained one: the scale it is trained and stopped on)."""
    if task.type == "binary":
        return "auc", False
    return ("rmse_log1p" if task.label_transform == "log1p" else "rmse"), True


def spec_for(spec: RankerSpec, variant: Variant) -> RankerSpec:
    """The spec of one variant: the spec with only the variant's tasks, and the keys that name other tasks
    dropped (score and gain weights, the bias tower's tasks, early stopping on a dropped task, feedback)."""
    if variant.tasks is None:
        return spec.model_copy(deep=True)
    keep = set(variant.tasks)
    raw = spec.model_dump()
    raw["tasks"] = [t for t in raw["tasks"] if t["name"] in keep]
    if variant.kind != "mtl":  # single-task and pair models compare heads that read their own label
        raw["model"]["ranking_head"] = False
    ev = raw["eval"]
    for key in ("score_weights", "gain_weights"):
        ev[key] = {t: w for t, w in (ev[key] or {}).items() if t in keep} or None
    ev["weights"] = None  # a serving profile names every head
    raw["feedback"] = None  # rules for every label task; not read by training
    bias = raw["model"].get("bias_tower")
    if bias is not None:
        bias["tasks"] = [t for t in bias["tasks"] if t in keep]
        raw["model"]["bias_tower"] = bias if bias["tasks"] else None
    train = raw["train"]
    if train["early_stopping_metric"] not in ("loss", "ndcg", *keep):
        train["early_stopping_metric"] = "loss"
    if train["loss_balancing"] in NEEDS_SHARING and len(keep) == 1:
        train["loss_balancing"] = "fixed"  # gradient surgery between tasks needs two tasks
    try:
        out = RankerSpec.model_validate(raw)
    except ValidationError as e:  # a spec this module cannot cut down: say which model, before any run
        raise SpecError(f"the {variant.name!r} model of the comparison: {format_errors(e, RankerSpec)}") from e
    if out.train.early_stopping_metric == "ndcg" and not out.gain_weights():
        out.train.early_stopping_metric = "loss"  # no gain left to rank by
    return out
