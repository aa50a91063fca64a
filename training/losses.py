"""Masked multi-task losses and loss balancing.

A label that was never observed (mask False) is out of that task's loss: each task's loss is the
mean over its observed rows only, and a batch with no observed rows for a task contributes exactly
0 for it (never NaN, never a gradient).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class MaskedTaskLosses(nn.Module):
    """Per-task masked mean losses, computed for all tasks at once.

    Args:
        losses: per task, "bce" (binary, on logits), "mse" or "huber" (regression, on scaled labels).
    """

    def __init__(self, losses: list[str]) -> None:
        super().__init__()
        self.register_buffer("is_bce", torch.tensor([x == "bce" for x in losses]), persistent=False)
        self.register_buffer("is_huber", torch.tensor([x == "huber" for x in losses]), persistent=False)

    def forward(self, raw: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """raw, labels (B, T) float; mask (B, T) bool -> (T,) mean losses and (T,) observed-row counts."""
        bce = F.binary_cross_entropy_with_logits(raw, labels, reduction="none")
        mse = (raw - labels).pow(2)
        huber = F.huber_loss(raw, labels, reduction="none", delta=1.0)
        elem = torch.where(self.is_bce, bce, torch.where(self.is_huber, huber, mse))  # (B, T)
        m = mask.to(elem.dtype)
        counts = m.sum(dim=0)  # (T,)
        # where() rather than multiply: a masked row's loss must not leak even if it is inf/NaN.
        per_task = torch.where(mask, elem, torch.zeros_like(elem)).sum(dim=0) / counts.clamp_min(1.0)
        return per_task, counts


class FixedWeighting(nn.Module):
    """total = sum_t w_t * L_t"""

    def __init__(self, weights: list[float]) -> None:
        super().__init__()
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))

    def forward(self, per_task: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return (self.weights * per_task).sum()

    def task_weights(self) -> torch.Tensor:
        return self.weights.detach().clone()


class UncertaintyWeighting(nn.Module):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    With s_t = log sigma_t^2 learned per task:
      regression      0.5 * exp(-s_t) * L_t + 0.5 * s_t   (Gaussian likelihood, their eq. 5)
      classification        exp(-s_t) * L_t + 0.5 * s_t   (scaled softmax/sigmoid, their eq. 10)
    A task without labels in the batch adds nothing, including its regularizer.
    """

    def __init__(self, task_types: list[str]) -> None:
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(len(task_types)))
        scale = [1.0 if t == "binary" else 0.5 for t in task_types]
        self.register_buffer("scale", torch.tensor(scale), persistent=False)

    def forward(self, per_task: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        present = (counts > 0).to(per_task.dtype)
        terms = self.scale * torch.exp(-self.log_vars) * per_task + 0.5 * self.log_vars
        return (present * terms).sum()

    def task_weights(self) -> torch.Tensor:
        return (self.scale * torch.exp(-self.log_vars)).detach().clone()
