"""Multi-task rankers: MMoE (Ma et al., KDD 2018) and the baselines it is compared with.

Every model maps (categorical (B, C) int64, numeric (B, F) float32) to raw head outputs (B, T):
logits for binary tasks, scaled labels for regression tasks. Losses live in training/modeling/losses.py and
natural-unit outputs in `ExportHeads`, so the exported graph is only the pure model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn


@dataclass
class ModelArgs:
    """Everything needed to rebuild a model; stored in the bundle manifest as `model_args`."""

    cardinalities: list[int]  # embedding rows per categorical feature (incl. the OOV slot)
    n_numeric: int
    tasks: list[str]
    arch: str = "mmoe"  # mmoe | omoe | shared_bottom | single_task
    num_experts: int = 4
    expert_hidden: list[int] = field(default_factory=lambda: [128, 64])
    tower_hidden: list[int] = field(default_factory=lambda: [64])
    embedding_dim: int = 16
    expert_dropout: float = 0.1  # probability of zeroing each gate weight while training
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class FeatureInput(nn.Module):
    """Embeds every categorical feature (one table, offset per feature) and appends the numerics."""

    def __init__(self, cardinalities: list[int], n_numeric: int, dim: int) -> None:
        super().__init__()
        offsets = torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        # With no categorical features (dense-only inputs, e.g. the synthetic benchmark) there is no table.
        self.embedding = nn.Embedding(sum(cardinalities), dim) if cardinalities else None
        if self.embedding is not None:
            nn.init.normal_(self.embedding.weight, std=0.05)
        self.out_dim = len(cardinalities) * dim + n_numeric

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        if self.embedding is None:
            return numeric  # (B, F)
        emb = self.embedding(categorical + self.offsets)  # (B, C, D)
        return torch.cat([emb.flatten(1), numeric], dim=1)  # (B, C*D + F)


class MLP(nn.Sequential):
    """Linear -> ReLU (-> Dropout) for each hidden size."""

    def __init__(self, in_dim: int, hidden: list[int], dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(in_dim, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            in_dim = h
        super().__init__(*layers)
        self.out_dim = in_dim


def last_linear(mlp: nn.Sequential) -> nn.Linear:
    """The last Linear layer of an MLP (GradNorm measures gradients there)."""
    return [m for m in mlp if isinstance(m, nn.Linear)][-1]


class Tower(nn.Module):
    """A task's head: MLP then one output unit. (B, H) -> (B,)"""

    def __init__(self, in_dim: int, hidden: list[int], dropout: float = 0.0) -> None:
        super().__init__()
        self.mlp = MLP(in_dim, hidden, dropout)
        self.out = nn.Linear(self.mlp.out_dim, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.mlp(h)).squeeze(-1)


class Gate(nn.Module):
    """Softmax over experts, with expert dropout while training (Zhao et al., RecSys 2019).

    In training each gate weight is zeroed with probability p and the rest renormalized, so a task
    cannot lean on one expert alone ("gating polarization"). A row whose every weight was dropped
    keeps them all, so there is never a division by zero. In eval the gate is a plain softmax.
    """

    def __init__(self, in_dim: int, num_experts: int, expert_dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, num_experts)
        self.p = expert_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.linear(x), dim=-1)  # (B, E)
        if self.training and self.p > 0:
            keep = torch.rand_like(w) >= self.p
            keep = keep | ~keep.any(dim=-1, keepdim=True)
            w = w * keep
            w = w / w.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return w


class MMoE(nn.Module):
    """Shared experts mixed per task by its own gate; `omoe` shares one gate across tasks."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.inputs = FeatureInput(args.cardinalities, args.n_numeric, args.embedding_dim)
        d = self.inputs.out_dim
        self.experts = nn.ModuleList(MLP(d, args.expert_hidden, args.dropout) for _ in range(args.num_experts))
        n_gates = 1 if args.arch == "omoe" else len(args.tasks)
        self.gates = nn.ModuleList(Gate(d, args.num_experts, args.expert_dropout) for _ in range(n_gates))
        h = args.expert_hidden[-1]
        self.towers = nn.ModuleList(Tower(h, args.tower_hidden, args.dropout) for _ in args.tasks)

    def shared_layer(self) -> list[nn.Parameter]:
        """The last layer every task shares: each expert's last Linear weight."""
        return [last_linear(e).weight for e in self.experts]

    def gate_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (T, B, E); with one shared gate the same weights serve every task."""
        w = torch.stack([g(x) for g in self.gates])  # (G, B, E)
        return w.expand(len(self.towers), -1, -1) if len(self.gates) == 1 else w

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor,
                return_gates: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x = self.inputs(categorical, numeric)  # (B, D)
        experts = torch.stack([e(x) for e in self.experts], dim=1)  # (B, E, H)
        gates = self.gate_weights(x)  # (T, B, E)
        mixed = torch.einsum("tbe,beh->tbh", gates, experts)  # (T, B, H)
        out = torch.stack([tower(mixed[t]) for t, tower in enumerate(self.towers)], dim=1)  # (B, T)
        return (out, gates) if return_gates else out


class SharedBottom(nn.Module):
    """One shared MLP under every task tower (hard parameter sharing)."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.inputs = FeatureInput(args.cardinalities, args.n_numeric, args.embedding_dim)
        self.bottom = MLP(self.inputs.out_dim, args.expert_hidden, args.dropout)
        self.towers = nn.ModuleList(Tower(self.bottom.out_dim, args.tower_hidden, args.dropout) for _ in args.tasks)

    def shared_layer(self) -> list[nn.Parameter]:
        """The last layer every task shares: the bottom MLP's last Linear weight."""
        return [last_linear(self.bottom).weight]

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        h = self.bottom(self.inputs(categorical, numeric))  # (B, H)
        return torch.stack([tower(h) for tower in self.towers], dim=1)  # (B, T)


class SingleTask(nn.Module):
    """Independent per-task models (own embeddings, bottom and tower) trained side by side.

    Parameters are disjoint, so summing their losses trains each exactly as if alone; the single
    module keeps export and serving identical to the multi-task models.
    """

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        one = ModelArgs(**{**args.to_dict(), "tasks": ["task"], "arch": "shared_bottom"})
        self.models = nn.ModuleList(SharedBottom(one) for _ in args.tasks)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(categorical, numeric) for m in self.models], dim=1)  # (B, T)


def build_model(args: ModelArgs) -> nn.Module:
    if args.arch in ("mmoe", "omoe"):
        return MMoE(args)
    if args.arch == "shared_bottom":
        return SharedBottom(args)
    if args.arch == "single_task":
        return SingleTask(args)
    raise ValueError(f"unknown arch {args.arch!r}; expected mmoe, omoe, shared_bottom or single_task")


class ExportHeads(nn.Module):
    """The served graph: a trained model plus the maps from raw heads to natural units.

    Binary heads -> sigmoid probability. Regression heads -> y = f^-1(z * std + mean), with f the
    label transform (identity or log1p) and mean/std the training label statistics.
    Returns one (B,) tensor per task, in task order.
    """

    def __init__(self, model: nn.Module, task_types: list[str], label_scale: list[tuple[str, float, float]]) -> None:
        super().__init__()
        self.model = model
        self.binary = [t == "binary" for t in task_types]
        self.log1p = [s[0] == "log1p" for s in label_scale]
        self.register_buffer("mean", torch.tensor([s[1] for s in label_scale], dtype=torch.float32))
        self.register_buffer("std", torch.tensor([s[2] for s in label_scale], dtype=torch.float32))

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raw = self.model(categorical, numeric)  # (B, T)
        outs = []
        for t, is_binary in enumerate(self.binary):
            if is_binary:
                outs.append(torch.sigmoid(raw[:, t]))
                continue
            z = raw[:, t] * self.std[t] + self.mean[t]
            outs.append(torch.expm1(z).clamp_min(0.0) if self.log1p[t] else z)
        return tuple(outs)
