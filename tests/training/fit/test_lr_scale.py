"""`tasks[].lr_scale`: a task's own parameters (tower, head, its gate) train at lr * lr_scale."""

from __future__ import annotations

import json

import pytest
import torch

from training.fit.train import make_optimizer, train
from training.modeling.losses import FixedWeighting
from training.modeling.model import build_model, task_parameters
from training.spec import RankerSpec


def scaled(spec: RankerSpec, task: str, scale: float) -> RankerSpec:
    raw = spec.model_dump()
    next(t for t in raw["tasks"] if t["name"] == task)["lr_scale"] = scale
    return RankerSpec.model_validate(raw)


def test_a_scaled_task_gets_its_own_param_group(trained) -> None:
    spec = scaled(trained.spec, "like", 0.25)
    model = build_model(trained.args)
    opt = make_optimizer(spec, model, FixedWeighting([1.0] * len(spec.tasks)), model)
    j = spec.task_names().index("like")
    own = {id(p) for p in task_parameters(model, j).values()}
    assert own and any(n.startswith(f"gates.{j}.") for n in task_parameters(model, j))  # tower and gate
    group = next(g for g in opt.param_groups if g.get("task") == "like")
    assert group["lr"] == pytest.approx(spec.train.lr * 0.25)
    assert {id(p) for p in group["params"]} == own
    rest = opt.param_groups[0]
    assert rest["lr"] == spec.train.lr and not own & {id(p) for p in rest["params"]}
    every = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(every) == sorted(id(p) for p in model.parameters())  # each parameter in exactly one group


def test_a_head_at_lr_scale_near_zero_stays_where_it_started(tiny_spec: RankerSpec, tmp_path) -> None:
    spec = scaled(tiny_spec, "like", 1e-9)
    spec.train.epochs = 1
    spec.train.threads = 1
    start: dict[str, torch.Tensor] = {}

    def snapshot(model, args, encoders) -> dict:
        start.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {}

    run = train(spec, out_dir=tmp_path, progress=False, init=snapshot)
    end = run.model.state_dict()
    like, click = spec.task_names().index("like"), spec.task_names().index("click")

    def moved(t: int) -> float:
        names = task_parameters(run.model, t)
        return max(float((end[n] - start[n]).abs().max()) for n in names)

    assert moved(like) < 1e-6
    assert moved(click) > 1e-3
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["best_epoch"] == {t: 1 for t in spec.task_names()}  # each head's best epoch so far


def test_best_epoch_per_task_reaches_the_manifest_metrics(trained) -> None:
    from training.bundle.report import training_summary

    heads = training_summary(trained)["per_task_stopping"]["heads"]
    assert set(heads) == set(trained.spec.task_names())
    assert all(1 <= h["best_epoch"] <= len(trained.history) for h in heads.values())
    assert trained.history[-1]["best_epoch"] == {t: h["best_epoch"] for t, h in heads.items()}


def test_lr_scale_must_be_positive(tiny_spec: RankerSpec) -> None:
    with pytest.raises(ValueError, match="lr_scale"):
        scaled(tiny_spec, "click", 0.0)
