"""Learning-rate schedules (train.lr_schedule): warmup, cosine decay, and the spec's rules."""

from __future__ import annotations

import pytest
import torch

from training.fit.schedule import lr_factor, make_scheduler
from training.spec.model import TrainConfig


def test_warmup_rises_linearly_then_holds() -> None:
    assert [lr_factor(s, 4, 100, cosine=False) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_decays_to_zero_at_the_last_step() -> None:
    assert lr_factor(10, 10, 110, cosine=True) == pytest.approx(1.0)
    assert lr_factor(60, 10, 110, cosine=True) == pytest.approx(0.5)
    assert lr_factor(110, 10, 110, cosine=True) == pytest.approx(0.0, abs=1e-12)


def test_the_scheduler_sets_the_optimizers_lr_per_step() -> None:
    cfg = TrainConfig(lr=0.01, epochs=2, lr_schedule="warmup_cosine", warmup_epochs=0.5)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=cfg.lr)
    sched = make_scheduler(cfg, opt, steps_per_epoch=10)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(0.002) and seen[4] == pytest.approx(0.01)
    assert seen[-1] < 0.001


def test_constant_has_no_scheduler_and_refuses_warmup_epochs() -> None:
    assert make_scheduler(TrainConfig(), torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1), 10) is None
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainConfig(warmup_epochs=1)
    assert TrainConfig(lr_schedule="warmup").warmup_epochs == 1.0
