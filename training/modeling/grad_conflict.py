"""Gradient-conflict balancers: PCGrad (Yu et al., NeurIPS 2020) and MGDA-UB (Sener & Koltun, NeurIPS 2018).

Both need one gradient per task, so a step costs up to T backward passes instead of one (measured
in docs/BENCHMARKS.md). Masked labels: a task with no labels in the batch has a loss of exactly 0
and no gradient; it is left out of the projection (PCGrad) and of the min-norm problem (MGDA-UB,
weight 0), so it can neither be divided by nor steer the others.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from training.modeling.losses import Balancer


class PCGrad(Balancer):
    """Project conflicting task gradients on the shared parameters, then sum them.

    For each task i (in a random order), whenever g_i . g_j < 0 for another task j, g_i loses its
    component along g_j. Only the shared parameters' gradients are projected; a task's own
    parameters (its tower, gate, own experts) get their gradient unchanged, since no other task
    pulls on them. Losses keep their fixed task weights: the projected gradients are of w_t L_t.

    Args:
        weights: fixed task weights (T,).
        params: every trainable parameter of the network, by name.
        shared: the names among them that more than one task depends on.
        seed: seed of the projection order.
    """

    def __init__(self, weights: list[float], params: dict[str, nn.Parameter], shared: set[str], seed: int = 0) -> None:
        super().__init__()
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))
        self.names = list(params)
        self.params = list(params.values())  # plain lists: the parameters belong to the network
        self.shared = [i for i, n in enumerate(self.names) if n in shared]
        self._is_shared = [n in shared for n in self.names]
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, per_task: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return (self.weights * per_task).sum()

    def backward(self, loss: torch.Tensor, per_task: torch.Tensor, counts: torch.Tensor) -> None:
        present = (counts > 0).nonzero().flatten().tolist()
        if len(present) < 2 or not self.shared:
            loss.backward()
            return
        grads = [self._task_grads(self.weights[t] * per_task[t]) for t in present]  # P x [param grads]
        shared = torch.stack([torch.cat([g[i].flatten() for i in self.shared]) for g in grads])  # (P, S)
        combined = project_conflicts(shared, self.generator).sum(dim=0)  # (S,)
        offset = 0
        for i, p in enumerate(self.params):
            if self._is_shared[i]:
                p.grad = combined[offset:offset + p.numel()].view_as(p).clone()
                offset += p.numel()
            else:
                p.grad = torch.stack([g[i] for g in grads]).sum(dim=0)

    def _task_grads(self, loss: torch.Tensor) -> list[torch.Tensor]:
        grads = torch.autograd.grad(loss, self.params, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads, strict=True)]

    def task_weights(self) -> torch.Tensor:
        return self.weights.detach().clone()


def project_conflicts(grads: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """PCGrad's surgery: (P, S) task gradients -> (P, S), each stripped of conflicts with the others."""
    out = grads.clone()
    for i in range(len(grads)):
        order = torch.randperm(len(grads), generator=generator).tolist()
        for j in order:
            if j == i:
                continue
            dot = out[i] @ grads[j]
            if dot < 0:
                out[i] -= dot / grads[j].pow(2).sum().clamp_min(1e-20) * grads[j]
    return out


class MGDAUB(Balancer):
    """MGDA-UB: weights from the min-norm point of the task gradients w.r.t. the shared representation.

    The gradient of each task's loss is taken w.r.t. Z, the output of the modules every task reads
    (`model.representation()`: the experts of an MMoE, the bottom of a shared-bottom model, the
    shared input of CGC/PLE), which costs T backward passes through the task-specific layers only
    (the paper's upper-bound approximation). The weights a solve the min-norm problem
    min ||sum_t a_t g_t||, a in the simplex, with g_t normalized as the official implementation does
    (`loss+` by default: g_t / (L_t ||g_t||)). The network then trains on P * sum_t a_t L_t (P = tasks
    with labels in the batch), so equal weights give the same scale as fixed weights of 1.
    """

    def __init__(self, n_tasks: int, representation: list[nn.Module], normalization: str = "loss+") -> None:
        super().__init__()
        if not representation:
            raise ValueError("MGDA-UB needs a representation that the tasks share")
        self.normalization = normalization
        self.register_buffer("alpha", torch.full((n_tasks,), 1.0 / n_tasks))
        self.register_buffer("alpha_ema", torch.ones(n_tasks))
        self._captured: list[torch.Tensor] = []
        self._hooks = [m.register_forward_hook(self._capture) for m in representation]

    def _capture(self, module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        if torch.is_grad_enabled() and module.training:
            self._captured.append(output)

    def forward(self, per_task: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return (self.alpha * per_task).sum() * len(per_task)  # for logging; backward uses this batch's weights

    def backward(self, loss: torch.Tensor, per_task: torch.Tensor, counts: torch.Tensor) -> None:
        z, self._captured = self._captured, []
        present = (counts > 0).nonzero().flatten().tolist()
        alpha = torch.zeros_like(per_task.detach())
        if len(present) == 1:
            alpha[present] = 1.0
        elif present:
            grads = torch.stack([self._grad(per_task[t], z) for t in present])  # (P, |Z|)
            alpha[present] = min_norm_weights(self._normalized(grads, per_task.detach()[present]))
        self.alpha.copy_(alpha)
        with torch.no_grad():
            self.alpha_ema.mul_(0.98).add_(0.02 * alpha * len(present))
        (len(present) * (alpha * per_task).sum()).backward()

    @staticmethod
    def _grad(loss: torch.Tensor, z: list[torch.Tensor]) -> torch.Tensor:
        grads = torch.autograd.grad(loss, z, retain_graph=True, allow_unused=True)
        return torch.cat([(torch.zeros_like(x) if g is None else g).flatten() for x, g in zip(z, grads, strict=True)])

    def _normalized(self, grads: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        norms = grads.norm(dim=1)
        scale = {"none": torch.ones_like(norms), "l2": norms, "loss": losses,
                 "loss+": losses * norms}[self.normalization]
        return grads / scale.clamp_min(1e-12)[:, None]

    def task_weights(self) -> torch.Tensor:
        """A moving average of P * a_t over recent batches (1 each = fixed weights)."""
        return self.alpha_ema.detach().clone()

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []


EXACT_MAX_TASKS = 6  # up to here the min-norm problem is solved exactly over every support (63 subsets)


def min_norm_weights(grads: torch.Tensor) -> torch.Tensor:
    """argmin over the simplex of ||sum_t a_t g_t||^2 (Sener & Koltun's min-norm subproblem).

    Args:
        grads: (P, N) one gradient per task.
    Returns:
        (P,) weights a >= 0 summing to 1.
    """
    gram = (grads @ grads.T).detach().double().numpy()  # (P, P); the problem is tiny: numpy, not torch
    alpha = _exact_min_norm(gram) if len(gram) <= EXACT_MAX_TASKS else _frank_wolfe(gram)
    return torch.from_numpy(alpha).to(grads.dtype)


def _exact_min_norm(gram: np.ndarray) -> np.ndarray:
    """The convex QP's optimum is the best feasible KKT point over the supports S: the solution of
    [[G_S, 1], [1^T, 0]] [a_S, -lambda] = [0, 1] (least squares where G_S is singular) with a_S >= 0."""
    n = len(gram)
    best, best_value = np.full(n, 1.0 / n), np.inf
    for mask in range(1, 2 ** n):
        support = [i for i in range(n) if mask >> i & 1]
        m = len(support)
        kkt = np.zeros((m + 1, m + 1))
        kkt[:m, :m], kkt[:m, m], kkt[m, :m] = gram[np.ix_(support, support)], 1.0, 1.0
        w = np.linalg.lstsq(kkt, np.r_[np.zeros(m), 1.0], rcond=None)[0][:m]
        if (w < -1e-9).any() or abs(w.sum() - 1.0) > 1e-6:
            continue
        alpha = np.zeros(n)
        alpha[support] = np.clip(w, 0.0, None) / np.clip(w, 0.0, None).sum()
        value = alpha @ gram @ alpha
        if value < best_value - 1e-15:
            best, best_value = alpha, value
    return best


def _frank_wolfe(gram: np.ndarray, iters: int = 250, tol: float = 1e-7) -> np.ndarray:
    n = len(gram)
    alpha = np.full(n, 1.0 / n)
    for _ in range(iters):
        g_alpha = gram @ alpha  # (P,)
        t = int(np.argmin(g_alpha))
        vv, vt, tt = alpha @ g_alpha, g_alpha[t], gram[t, t]
        denom = vv + tt - 2 * vt  # min over gamma of ||gamma v + (1 - gamma) g_t||^2
        gamma = 1.0 if denom <= 1e-20 else float(np.clip((tt - vt) / denom, 0.0, 1.0))
        new = gamma * alpha
        new[t] += 1.0 - gamma
        done = np.abs(new - alpha).sum() < tol
        alpha = new
        if done:
            break
    return alpha
