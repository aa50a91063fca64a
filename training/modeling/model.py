"""Multi-task rankers: MMoE (Ma et al., KDD 2018), CGC / PLE (training/modeling/ple.py) and the baselines.

Every model maps (categorical (B, C) int64, numeric (B, F) float32) to raw head outputs (B, T):
logits for binary tasks, scaled labels for regression tasks. Losses live in training/modeling/losses.py and
natural-unit outputs in `ExportHeads`, so the exported graph is only the pure model.

Every model also says which of its parameters belong to one task only (`task_parts`: per-task early
stopping combines those from each head's best epoch; PCGrad treats the rest as shared) and, where
tasks share something, which layer GradNorm measures (`shared_layer`) and which outputs MGDA-UB
differentiates (`representation`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from training.modeling.args import ModelArgs
from training.modeling.modules import MLP, FeatureInput, Gate, Tower, expert, feature_input, last_linear
from training.modeling.ple import PLE

__all__ = ["MLP", "FeatureInput", "Gate", "ModelArgs", "Tower", "last_linear"]  # re-exported


class MMoE(nn.Module):
    """Shared experts mixed per task by its own gate; `omoe` shares one gate across tasks."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.inputs = feature_input(args)
        d = self.inputs.out_dim
        self.experts = nn.ModuleList(expert(d, args) for _ in range(args.num_experts))
        n_gates = 1 if args.arch == "omoe" else len(args.tasks)
        self.gates = nn.ModuleList(Gate(d, args.num_experts, args.expert_dropout) for _ in range(n_gates))
        h = args.expert_hidden[-1]
        self.towers = nn.ModuleList(Tower(h, args.tower_hidden, args.dropout) for _ in args.tasks)

    def shared_layer(self) -> list[nn.Parameter]:
        """The last layer every task shares: each expert's last Linear weight."""
        return [last_linear(e).weight for e in self.experts]

    def representation(self) -> list[nn.Module]:
        """Modules whose outputs are the representation every task reads (MGDA-UB's Z): the experts."""
        return list(self.experts)

    def task_parts(self, t: int) -> list[str]:
        """state_dict prefixes that only task t's output depends on."""
        return [f"towers.{t}."] + ([f"gates.{t}."] if len(self.gates) > 1 else [])

    def shared_slots(self) -> list[bool]:
        """Per gate slot: is that expert shared by every task? (all of them, in an MMoE)"""
        return [True] * len(self.experts)

    def gate_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (T, B, E); with one shared gate the same weights serve every task."""
        w = torch.stack([g(x) for g in self.gates])  # (G, B, E)
        return w.expand(len(self.towers), -1, -1) if len(self.gates) == 1 else w

    def gate_levels(self, categorical: torch.Tensor, numeric: torch.Tensor) -> list[torch.Tensor]:
        """The task gates' weights, one (T, B, E) tensor per level (an MMoE has one level)."""
        return [self.gate_weights(self.inputs(categorical, numeric))]

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        x = self.inputs(categorical, numeric)  # (B, D)
        experts = torch.stack([e(x) for e in self.experts], dim=1)  # (B, E, H)
        gates = self.gate_weights(x)  # (T, B, E)
        mixed = torch.einsum("tbe,beh->tbh", gates, experts)  # (T, B, H)
        return torch.stack([tower(mixed[t]) for t, tower in enumerate(self.towers)], dim=1)  # (B, T)


class SharedBottom(nn.Module):
    """One shared MLP under every task tower (hard parameter sharing)."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.inputs = feature_input(args)
        self.bottom = expert(self.inputs.out_dim, args)
        self.towers = nn.ModuleList(Tower(self.bottom.out_dim, args.tower_hidden, args.dropout) for _ in args.tasks)

    def shared_layer(self) -> list[nn.Parameter]:
        """The last layer every task shares: the bottom MLP's last Linear weight."""
        return [last_linear(self.bottom).weight]

    def representation(self) -> list[nn.Module]:
        return [self.bottom]

    def task_parts(self, t: int) -> list[str]:
        return [f"towers.{t}."]

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        h = self.bottom(self.inputs(categorical, numeric))  # (B, H)
        return torch.stack([tower(h) for tower in self.towers], dim=1)  # (B, T)


class SingleTask(nn.Module):
    """Independent per-task models (own embeddings, bottom and tower) trained side by side.

    Parameters are disjoint, so summing their losses trains each exactly as if alone; the single
    module keeps export and serving identical to the multi-task models. Nothing is shared, so it
    has no shared_layer or representation (gradient-based balancers refuse it).
    """

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        one = ModelArgs(**{**args.to_dict(), "tasks": ["task"], "arch": "shared_bottom"})
        self.models = nn.ModuleList(SharedBottom(one) for _ in args.tasks)

    def task_parts(self, t: int) -> list[str]:
        return [f"models.{t}."]

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(categorical, numeric) for m in self.models], dim=1)  # (B, T)


ARCHS = ("mmoe", "omoe", "cgc", "ple", "shared_bottom", "single_task")
GATED_ARCHS = ("mmoe", "omoe", "cgc", "ple")


def build_model(args: ModelArgs) -> nn.Module:
    if args.arch in ("mmoe", "omoe"):
        return MMoE(args)
    if args.arch in ("cgc", "ple"):
        return PLE(args)
    if args.arch == "shared_bottom":
        return SharedBottom(args)
    if args.arch == "single_task":
        return SingleTask(args)
    raise ValueError(f"unknown arch {args.arch!r}; expected one of {', '.join(ARCHS)}")


def task_parameters(model: nn.Module, t: int) -> dict[str, nn.Parameter]:
    """Parameters (by state_dict name) that only task t's head depends on."""
    prefixes = tuple(model.task_parts(t))
    return {n: p for n, p in model.named_parameters() if n.startswith(prefixes)}


def shared_parameters(model: nn.Module, n_tasks: int) -> dict[str, nn.Parameter]:
    """Parameters more than one task depends on: everything outside every task's own parts."""
    own = {n for t in range(n_tasks) for n in task_parameters(model, t)}
    return {n: p for n, p in model.named_parameters() if n not in own}


class ExportHeads(nn.Module):
    """The served graph: a trained model plus the maps from raw heads to natural units.

    Binary heads -> sigmoid probability. Regression heads -> y = f^-1(z * std + mean), with f the
    label transform (identity or log1p) and mean/std the training label statistics.
    Returns one (B,) tensor per output, in task order. `columns`: the model's raw columns the outputs are
    (default all; the served tasks of a spec with auxiliary heads), task_types and label_scale per output.
    """

    def __init__(self, model: nn.Module, task_types: list[str], label_scale: list[tuple[str, float, float]],
                 columns: list[int] | None = None) -> None:
        super().__init__()
        self.model = model
        self.columns = list(range(len(task_types))) if columns is None else list(columns)
        self.binary = [t == "binary" for t in task_types]
        self.log1p = [s[0] == "log1p" for s in label_scale]
        self.register_buffer("mean", torch.tensor([s[1] for s in label_scale], dtype=torch.float32))
        self.register_buffer("std", torch.tensor([s[2] for s in label_scale], dtype=torch.float32))

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raw = self.model(categorical, numeric)  # (B, T)
        outs = []
        for t, (column, is_binary) in enumerate(zip(self.columns, self.binary, strict=True)):
            if is_binary:
                outs.append(torch.sigmoid(raw[:, column]))
                continue
            z = raw[:, column] * self.std[t] + self.mean[t]
            outs.append(torch.expm1(z).clamp_min(0.0) if self.log1p[t] else z)
        return tuple(outs)
