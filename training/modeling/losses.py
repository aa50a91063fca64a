"""Masked multi-task losses and loss balancing.

A label that was never observed (mask False) is out of that task's loss: each task's loss is the
mean over its observed rows only, and a batch with no observed rows for a task contributes exactly
0 for it (never NaN, never a gradient).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.modeling.listwise import LOSSES as LISTWISE
from training.modeling.listwise import listwise_loss

LISTWISE_LOSSES = tuple(LISTWISE)


class MaskedTaskLosses(nn.Module):
    """Per-task masked mean losses, computed for all tasks at once.

    Args:
        losses: per task, "bce" (binary, on logits), "mse" or "huber" (regression, on scaled labels), or a
            listwise loss of a ranking task ("lambdarank", "listnet": training/modeling/listwise.py), whose
            count is the requests that carried signal rather than rows.
    """

    def __init__(self, losses: list[str]) -> None:
        super().__init__()
        self.register_buffer("is_bce", torch.tensor([x == "bce" for x in losses]), persistent=False)
        self.register_buffer("is_huber", torch.tensor([x == "huber" for x in losses]), persistent=False)
        self.listwise = [(t, x) for t, x in enumerate(losses) if x in LISTWISE_LOSSES]

    def forward(self, raw: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                group: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """raw, labels (B, T) float; mask (B, T) bool; group (B,) int64 request of each row (needed with a
        ranking task) -> (T,) mean losses and (T,) counts (observed rows; requests with signal for ranking)."""
        per_task, counts = self._pointwise(raw, labels, mask)
        if not self.listwise:
            return per_task, counts
        if group is None:
            raise ValueError("a ranking task needs batches of whole requests (Batch.group)")
        per_task, counts = list(per_task.unbind()), list(counts.unbind())
        for t, kind in self.listwise:
            per_task[t], counts[t] = listwise_loss(kind, raw[:, t], labels[:, t], mask[:, t], group)
        return torch.stack(per_task), torch.stack(counts)

    def _pointwise(self, raw: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Zero the unobserved labels first: a NaN there would pass the where() below in the forward
        # pass but still turn the gradient into NaN (0 * NaN) in the backward pass.
        labels = torch.where(mask, labels, torch.zeros_like(labels))
        bce = F.binary_cross_entropy_with_logits(raw, labels, reduction="none")
        mse = (raw - labels).pow(2)
        huber = F.huber_loss(raw, labels, reduction="none", delta=1.0)
        elem = torch.where(self.is_bce, bce, torch.where(self.is_huber, huber, mse))  # (B, T)
        m = mask.to(elem.dtype)
        counts = m.sum(dim=0)  # (T,)
        # where() rather than multiply: a masked row's loss must not leak even if it is inf.
        per_task = torch.where(mask, elem, torch.zeros_like(elem)).sum(dim=0) / counts.clamp_min(1.0)
        return per_task, counts


class Balancer(nn.Module):
    """Combines per-task losses into the one loss the network is trained on.

    The trainer calls, per step: `forward` (the total loss), `backward` (after zero_grad: fills
    every parameter's .grad) and `after_step` (after the optimizer step); `close` once training
    ends. The default backward runs `before_backward` (balancers that learn their weights from
    something other than the total loss set their own .grad there) and then the total loss's
    backward; gradient-surgery balancers (training/modeling/grad_conflict.py) replace it.
    """

    def before_backward(self, per_task: torch.Tensor, counts: torch.Tensor) -> None:
        return None

    def backward(self, loss: torch.Tensor, per_task: torch.Tensor, counts: torch.Tensor) -> None:
        self.before_backward(per_task, counts)
        loss.backward()

    def after_step(self) -> None:
        return None

    def close(self) -> None:
        return None

    def task_weights(self) -> torch.Tensor:
        raise NotImplementedError


class FixedWeighting(Balancer):
    """total = sum_t w_t * L_t"""

    def __init__(self, weights: list[float]) -> None:
        super().__init__()
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))

    def forward(self, per_task: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return (self.weights * per_task).sum()

    def task_weights(self) -> torch.Tensor:
        return self.weights.detach().clone()


class UncertaintyWeighting(Balancer):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018).

    With s_t = log sigma_t^2 learned per task:
      regression      0.5 * exp(-s_t) * L_t + 0.5 * s_t   (Gaussian likelihood, their eq. 5)
      classification        exp(-s_t) * L_t + 0.5 * s_t   (scaled softmax/sigmoid, their eq. 10; ranking too)
    A task without labels in the batch adds nothing, including its regularizer.
    """

    def __init__(self, task_types: list[str]) -> None:
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(len(task_types)))
        scale = [0.5 if t == "regression" else 1.0 for t in task_types]  # binary and ranking: cross-entropies
        self.register_buffer("scale", torch.tensor(scale), persistent=False)

    def forward(self, per_task: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        present = (counts > 0).to(per_task.dtype)
        terms = self.scale * torch.exp(-self.log_vars) * per_task + 0.5 * self.log_vars
        return (present * terms).sum()

    def task_weights(self) -> torch.Tensor:
        return (self.scale * torch.exp(-self.log_vars)).detach().clone()


class GradNorm(Balancer):
    """GradNorm (Chen et al., ICML 2018): learn task weights that balance gradient magnitudes.

    With G_t = ||grad_W (w_t L_t)|| on the last shared layer W, G_bar their mean, and
    r_t = (L_t / L_t(0)) / mean_j (L_j / L_j(0)) the relative inverse training rate, the weights
    minimize sum_t |G_t - G_bar * r_t^alpha| (target held constant), while the network minimizes
    sum_t w_t L_t with the weights held constant. After each step the weights are kept positive and
    renormalized to sum to T.

    Masked labels: a task with no labels in a batch is left out of G_bar, of the mean rate and of
    the weight loss, so it gets no weight update from that batch (and no 0/0). L_t(0) is taken from
    the first batch in which task t has labels.

    Args:
        n_tasks: T.
        shared: parameters of the last shared layer (e.g. every expert's last Linear weight).
        alpha: restoring-force strength; 0 equalizes gradient norms regardless of training rates.
    """

    MIN_WEIGHT = 1e-3  # a weight never reaches 0: the task would drop out of training for good

    def __init__(self, n_tasks: int, shared: list[nn.Parameter], alpha: float = 1.5) -> None:
        super().__init__()
        if not shared:
            raise ValueError("GradNorm needs the parameters of a shared layer")
        self.weights = nn.Parameter(torch.ones(n_tasks))
        self.shared = shared  # a plain list: these belong to the model, not to the balancer
        self.alpha = alpha
        self.register_buffer("initial_loss", torch.zeros(n_tasks))
        self.register_buffer("seen", torch.zeros(n_tasks, dtype=torch.bool))

    def forward(self, per_task: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        # The network's loss sees constant weights; the weights learn only from the GradNorm loss.
        return (self.weights.detach() * per_task).sum()

    def before_backward(self, per_task: torch.Tensor, counts: torch.Tensor) -> None:
        present = counts > 0  # (T,)
        fresh = present & ~self.seen
        self.initial_loss[fresh] = per_task.detach()[fresh].clamp_min(1e-8)
        self.seen |= present
        norms = self._grad_norms(per_task, present)  # (T,), 0 where absent
        if int(present.sum()) < 2:
            return  # a lone task is trivially balanced with itself
        ratio = per_task.detach() / self.initial_loss.clamp_min(1e-8)  # (T,)
        rate = ratio / ratio[present].mean()
        weighted = self.weights * norms  # G_t, differentiable in w_t only
        target = (weighted[present].mean() * rate[present] ** self.alpha).detach()
        loss = (weighted[present] - target).abs().sum()
        (self.weights.grad,) = torch.autograd.grad(loss, self.weights)

    def _grad_norms(self, per_task: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """||grad_W L_t|| for each present task (unweighted), 0 for absent ones."""
        norms = torch.zeros_like(per_task)
        for t in present.nonzero().flatten().tolist():
            grads = torch.autograd.grad(per_task[t], self.shared, retain_graph=True, allow_unused=True)
            sq = sum((g.pow(2).sum() for g in grads if g is not None), torch.zeros(()))
            norms[t] = sq.sqrt()
        return norms.detach()

    @torch.no_grad()
    def after_step(self) -> None:
        w = self.weights.clamp_min(self.MIN_WEIGHT)
        self.weights.copy_(w * (len(w) / w.sum()))

    def task_weights(self) -> torch.Tensor:
        return self.weights.detach().clone()
