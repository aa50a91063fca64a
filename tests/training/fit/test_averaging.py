"""Weight averaging (train.ema_epochs): the average's arithmetic, and a fit that validates and keeps it."""

from __future__ import annotations

import pytest
import torch

from training.evaluation.inference import EVAL_BATCH
from training.fit.averaging import WeightAverage
from training.fit.train import fit, validation_loss
from training.modeling.losses import MaskedTaskLosses
from training.modeling.model import build_model
from training.spec.model import TrainConfig
from training.streaming.feed import EvalFeed, SplitTensors


def test_the_average_follows_the_warmed_up_decay_and_swaps_back() -> None:
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    average = WeightAverage(layer, horizon_steps=100)  # decay 0.99, but (1 + t) / (10 + t) first
    with torch.no_grad():
        layer.weight.fill_(3.0)
    average.update()  # t = 1: decay 2/11
    expected = 2 / 11 * 1.0 + 9 / 11 * 3.0
    assert average.average[0] == pytest.approx(torch.full((1, 2), expected))
    average.swap_in()
    assert layer.weight.detach() == pytest.approx(torch.full((1, 2), expected))
    average.swap_in()  # twice is once: the raw weights are not overwritten by the average
    average.swap_out()
    assert torch.equal(layer.weight.detach(), torch.full((1, 2), 3.0))


def test_ema_epochs_is_on_by_default_positive_or_null() -> None:
    assert TrainConfig().ema_epochs == 2.0
    assert TrainConfig(ema_epochs=None).ema_epochs is None
    with pytest.raises(ValueError, match="ema_epochs"):
        TrainConfig(ema_epochs=0)


def _fit(trained, ema_epochs: float | None):
    spec = trained.spec.model_copy(deep=True)
    spec.train.epochs, spec.train.early_stopping_patience, spec.train.ema_epochs = 2, 5, ema_epochs
    torch.manual_seed(0)
    model = build_model(trained.args)
    history = fit(spec, trained.prepared, model, progress=False).history
    return spec, model, history


def test_a_fit_trains_the_raw_weights_and_validates_and_keeps_the_average(trained) -> None:
    _, _, plain = _fit(trained, None)
    spec, model, averaged = _fit(trained, 0.5)
    # Training goes on from the raw weights: the same steps give the same training losses...
    assert [h["train_loss"] for h in averaged] == [h["train_loss"] for h in plain]
    # ...while validation saw the average,
    assert [h["valid_loss"] for h in averaged] != [h["valid_loss"] for h in plain]
    # and the weights kept are the ones validated at the best epoch.
    best = min(averaged, key=lambda h: h["valid_loss"])
    valid = EvalFeed(SplitTensors.of(trained.prepared.valid, None, True), None, EVAL_BATCH, True)  # no bias tower
    loss, _ = validation_loss(model, valid, MaskedTaskLosses([t.loss for t in spec.tasks]), spec)
    assert loss == pytest.approx(best["valid_loss"], rel=1e-6)
