"""Early stopping on a chosen metric; per-task early stopping tracks and combines heads honestly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.fit.early_stopping import Stopper
from training.fit.train import fit, model_args, prepare
from training.modeling.model import build_model
from training.spec import RankerSpec


def metrics(click: float, like: float, rating: float, ndcg: float = 0.5) -> dict:
    return {"tasks": {"click": {"auc": click}, "watch_time": {"rmse": 1.0, "rmse_log1p": 0.8},
                      "like": {"auc": like}, "rating": {"rmse": rating}, "rank": {"ndcg": ndcg}}, "ndcg@10": ndcg}


def spec_with(tiny_spec: RankerSpec, **train) -> RankerSpec:
    spec = tiny_spec.model_copy(deep=True)
    for key, value in train.items():
        setattr(spec.train, key, value)
    spec.train.threads = 1
    return spec


def test_stopper_watches_the_chosen_metric_in_its_direction(tiny_spec: RankerSpec) -> None:
    epochs = [metrics(0.70, 0.80, 0.9), metrics(0.71, 0.78, 0.8), metrics(0.72, 0.79, 0.85)]
    cases = {"like": 1, "click": 3, "rating": 2, "loss": 3}  # losses below fall every epoch
    for metric, best in cases.items():
        stopper = Stopper(spec_with(tiny_spec, early_stopping_metric=metric, early_stopping_patience=5))
        for epoch, m in enumerate(epochs, start=1):
            stopper.update(epoch, 1.0 - 0.1 * epoch, m)
        assert stopper.best_epoch == best, metric


def test_stopper_runs_out_of_patience_after_patience_plus_one_stale_epochs(tiny_spec: RankerSpec) -> None:
    stopper = Stopper(spec_with(tiny_spec, early_stopping_metric="click", early_stopping_patience=1))
    stopper.update(1, 1.0, metrics(0.7, 0.8, 0.9))
    stopper.update(2, 1.0, metrics(0.69, 0.8, 0.9))
    assert not stopper.should_stop()
    stopper.update(3, 1.0, metrics(0.68, 0.8, 0.9))
    assert stopper.should_stop()


def run(spec: RankerSpec, arch_overrides: dict | None = None, progress: bool = False) -> tuple[list, dict]:
    if arch_overrides:
        for key, value in arch_overrides.items():
            setattr(spec.model, key, value)
    torch.set_num_threads(1)  # as train() does with train.threads: 2 spinning threads crawl on a shared box
    prep = prepare(spec)
    model = build_model(model_args(spec, prep.encoders, prep.train.numeric))
    fitted = fit(spec, prep, model, None, progress)
    return fitted.history, fitted.stopping


def head_curve(history: list[dict], task: str) -> np.ndarray:
    m = history[0]["valid_metrics"][task]
    key = next(k for k in ("auc", "ndcg", "rmse_log1p", "rmse") if k in m)
    sign = 1.0 if key in ("auc", "ndcg") else -1.0
    return sign * np.array([h["valid_metrics"][task][key] for h in history])


@pytest.mark.slow
def test_single_task_combine_is_exact_per_task_early_stopping(tiny_spec: RankerSpec) -> None:
    spec = spec_with(tiny_spec, epochs=5, early_stopping_patience=5, per_task_stopping="combine")
    history, outcome = run(spec, {"arch": "single_task", "num_experts": None, "expert_dropout": None})
    for task, result in outcome["combined"].items():
        curve = head_curve(history, task)
        assert outcome["heads"][task]["best_epoch"] == int(np.argmax(curve)) + 1
        # Each per-task model comes whole from its own best epoch: its validation metric is its best.
        assert result["combined"] == pytest.approx(outcome["heads"][task]["at_best"], abs=1e-9)


@pytest.mark.slow
def test_mmoe_combine_never_makes_a_head_worse_and_logs_show_every_head(tiny_spec: RankerSpec, capsys) -> None:
    spec = spec_with(tiny_spec, epochs=5, early_stopping_patience=5, per_task_stopping="combine",
                     early_stopping_metric="like")
    history, outcome = run(spec, progress=True)
    printed = capsys.readouterr()
    for task in spec.task_names():
        assert task in history[0]["valid_metrics"]
        assert f"{task} " in printed.out  # each epoch's line names every head and its metric
    like = head_curve(history, "like")
    assert outcome["best_epoch"] == int(np.argmax(like)) + 1  # stopped on like's AUC, not the loss
    for task, result in outcome["combined"].items():
        lower = not {"auc", "ndcg"} & set(history[0]["valid_metrics"][task])
        better = result["joint"] - result["combined"] if lower else result["combined"] - result["joint"]
        assert better >= 0
        assert result["swapped"] == (better > 0)
