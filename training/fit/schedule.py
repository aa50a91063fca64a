"""Learning-rate schedules (`train.lr_schedule`), stepped once per optimizer step.

`warmup`         lr rises linearly from lr/steps to lr over warmup_epochs, then stays.
`warmup_cosine`  the same warmup, then a cosine decay to 0 at the end of the last allowed epoch
                 (train.epochs; early stopping may end the run before the decay does).
"""

from __future__ import annotations

import math

import torch

from training.spec.model import TrainConfig


def lr_factor(step: int, warmup_steps: int, total_steps: int, cosine: bool) -> float:
    """The multiplier of the peak lr at optimizer step `step` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if not cosine or total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR | None:
    """A LambdaLR over every parameter group, or None for `constant`."""
    if cfg.lr_schedule == "constant":
        return None
    warmup = max(1, round(cfg.warmup_epochs * steps_per_epoch))
    total = cfg.epochs * steps_per_epoch
    cosine = cfg.lr_schedule == "warmup_cosine"
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, warmup, total, cosine))
