"""CGC and PLE (Tang et al., "Progressive Layered Extraction", RecSys 2020).

Each task owns `task_experts` experts and every task shares `shared_experts` more. Task t's gate
mixes its own experts with the shared ones, so a task can keep what conflicts with the others out
of the shared experts (the "seesaw" the paper addresses). CGC is one such extraction level; PLE
stacks `levels` of them: below the last level a shared gate mixes *every* expert into the next
level's shared input, and task t's mixture becomes task t's input to the next level.

    level input     task_in[t] (B, D) for each task, shared_in (B, D); level 0: both are x
    task gate t     softmax over [own experts of t, shared experts]       (B, K + S)
    shared gate     softmax over [experts of every task, shared experts]  (B, T*K + S)

Expert dropout (training only) applies to every gate, task and shared.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from training.modeling.args import ModelArgs
from training.modeling.modules import Gate, Tower, expert, feature_input, last_linear, mix


class ExtractionLevel(nn.Module):
    """One CGC level: per-task and shared experts, a gate per task, and (below the top) a shared gate."""

    def __init__(self, in_dim: int, n_tasks: int, args: ModelArgs, last: bool) -> None:
        super().__init__()
        k, s, p = args.task_experts, args.shared_experts, args.expert_dropout

        def experts(n: int) -> nn.ModuleList:
            return nn.ModuleList(expert(in_dim, args) for _ in range(n))

        self.task_experts = nn.ModuleList(experts(k) for _ in range(n_tasks))
        self.shared_experts = experts(s)
        self.task_gates = nn.ModuleList(Gate(in_dim, k + s, p) for _ in range(n_tasks))
        self.shared_gate = None if last else Gate(in_dim, n_tasks * k + s, p)
        self.out_dim = args.expert_hidden[-1]

    def forward(self, task_in: list[torch.Tensor], shared_in: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor | None, torch.Tensor]:
        """T x (B, D), (B, D) -> T x (B, H) task outputs, (B, H) shared output or None, (T, B, K+S) gates."""
        shared = torch.stack([e(shared_in) for e in self.shared_experts], dim=1)  # (B, S, H)
        own = [torch.stack([e(x) for e in group], dim=1)  # (B, K, H)
               for x, group in zip(task_in, self.task_experts, strict=True)]
        gates = torch.stack([g(x) for x, g in zip(task_in, self.task_gates, strict=True)])  # (T, B, K+S)
        task_out = [mix(gates[t], torch.cat([own[t], shared], dim=1)) for t in range(len(own))]
        shared_out = None
        if self.shared_gate is not None:
            shared_out = mix(self.shared_gate(shared_in), torch.cat([*own, shared], dim=1))
        return task_out, shared_out, gates


class PLE(nn.Module):
    """`levels` extraction levels (1 for `arch: cgc`) under one tower per task."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        n_levels = 1 if args.arch == "cgc" else args.levels
        self.n_tasks = len(args.tasks)
        self.inputs = feature_input(args)
        levels, d = [], self.inputs.out_dim
        for i in range(n_levels):
            levels.append(ExtractionLevel(d, self.n_tasks, args, last=i == n_levels - 1))
            d = levels[-1].out_dim
        self.levels = nn.ModuleList(levels)
        self.towers = nn.ModuleList(Tower(d, args.tower_hidden, args.dropout) for _ in args.tasks)
        self.task_experts = args.task_experts

    def shared_layer(self) -> list[nn.Parameter]:
        """The last layer every task shares: the top level's shared experts' last Linear weight."""
        return [last_linear(e).weight for e in self.levels[-1].shared_experts]

    def representation(self) -> list[nn.Module]:
        """The shared input (x): the top level's task experts read it too in CGC, so nothing higher is common."""
        return [self.inputs]

    def task_parts(self, t: int) -> list[str]:
        """Task t's tower, its top-level experts and gate, and the gate feeding those experts."""
        top = len(self.levels) - 1
        parts = [f"towers.{t}.", f"levels.{top}.task_experts.{t}.", f"levels.{top}.task_gates.{t}."]
        if top > 0:  # below the top, task t's gate feeds only task t's top-level experts and gate
            parts.append(f"levels.{top - 1}.task_gates.{t}.")
        return parts

    def shared_slots(self) -> list[bool]:
        """Per task-gate slot: own experts first, then the shared ones."""
        return [False] * self.task_experts + [True] * len(self.levels[-1].shared_experts)

    def _run(self, categorical: torch.Tensor, numeric: torch.Tensor
             ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        x = self.inputs(categorical, numeric)  # (B, D)
        task_in, shared_in = [x] * self.n_tasks, x
        gates = []
        for level in self.levels:
            task_in, shared_in, g = level(task_in, shared_in)
            gates.append(g)
        return task_in, gates

    def gate_levels(self, categorical: torch.Tensor, numeric: torch.Tensor) -> list[torch.Tensor]:
        """The task gates' weights, one (T, B, K+S) tensor per level, bottom first."""
        return self._run(categorical, numeric)[1]

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        task_out, _ = self._run(categorical, numeric)
        return torch.stack([tower(h) for tower, h in zip(self.towers, task_out, strict=True)], dim=1)  # (B, T)
