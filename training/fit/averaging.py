"""An exponential moving average of the weights (`train.ema_epochs`), validated, kept and exported in
place of the raw weights, which the optimizer goes on training.

    avg <- d * avg + (1 - d) * w   after every optimizer step,  d = min(decay, (1 + t) / (10 + t))

The warmup of `d` (TensorFlow's ExponentialMovingAverage with num_updates) keeps the first epochs'
average from leaning on the random initialization.
"""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    """The running average of `module`'s parameters, swapped in for validation and swapped out to train on."""

    def __init__(self, module: nn.Module, horizon_steps: float) -> None:
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.decay = 1.0 - 1.0 / max(1.0, horizon_steps)
        self.average = [p.detach().clone() for p in self.params]
        self.steps = 0
        self._raw: list[torch.Tensor] | None = None

    @torch.no_grad()
    def update(self) -> None:
        """Fold the current weights in (after an optimizer step)."""
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 - decay)

    @torch.no_grad()
    def swap_in(self) -> None:
        """Put the average into the module; the raw weights wait for `swap_out`."""
        if self._raw is None:
            self._raw = [p.detach().clone() for p in self.params]
            torch._foreach_copy_([p.data for p in self.params], self.average)

    @torch.no_grad()
    def swap_out(self) -> None:
        """Put the raw weights back (to train on)."""
        if self._raw is not None:
            torch._foreach_copy_([p.data for p in self.params], self._raw)
            self._raw = None
