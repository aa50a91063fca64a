"""Gradients averaged over ranks after each backward, and the bytes that takes.

Dense gradients go in one flat buffer and one all-reduce. Embedding tables are the exception
(`train.embedding_grads`):

    rows    a table's gradient is zero outside the rows the rank's batch looked up, so each rank sends
            only those rows (their ids and values, all-gathered) and every rank adds all of them up:
            the bytes scale with the rows a step touches, not with the vocabulary. The sum is exactly
            the dense all-reduce's, so the optimizer (dense Adam) and the result do not change.
    dense   tables ride in the flat all-reduce like every other gradient (bytes = the whole table).

The looked-up rows are recorded by a forward pre-hook on every nn.Embedding of the training graph
(only in training mode), so no model code changes. This runs after the loss balancer's backward,
whatever it did (PCGrad and MGDA-UB combine per-task gradients with autograd.grad, which bypasses
DistributedDataParallel's hooks): each rank balances its own batch, then the results are averaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from training.distributed.context import Dist


@dataclass
class SyncBytes:
    """Payload per step that one rank hands to collectives, summed over the steps counted."""

    steps: int = 0
    dense: int = 0  # the flat all-reduce buffer
    rows: int = 0  # embedding row ids + values sent (all-gather, padded to the longest rank)
    rows_touched: int = 0  # distinct embedding rows looked up by this rank

    def per_step(self) -> dict[str, float]:
        n = max(self.steps, 1)
        return {"dense_bytes": self.dense / n, "row_bytes": self.rows / n, "rows_touched": self.rows_touched / n,
                "bytes": (self.dense + self.rows) / n}


@dataclass
class GradSync:
    graph: nn.Module
    extra: list[nn.Parameter]  # the loss balancer's learnable weights, averaged too
    dist: Dist
    mode: str = "rows"
    counted: SyncBytes = field(default_factory=SyncBytes)

    def __post_init__(self) -> None:
        self.tables = [m for m in self.graph.modules() if isinstance(m, nn.Embedding)] if self.mode == "rows" else []
        sparse = {id(m.weight) for m in self.tables}
        self.dense = [p for p in [*self.graph.parameters(), *self.extra] if id(p) not in sparse]
        self._looked_up: dict[int, list[torch.Tensor]] = {id(m): [] for m in self.tables}
        self._hooks = [m.register_forward_pre_hook(self._record) for m in self.tables]

    def _record(self, module: nn.Module, args: tuple) -> None:
        if module.training:
            self._looked_up[id(module)].append(args[0].detach().reshape(-1))

    def __call__(self) -> None:
        """Average every gradient over the ranks (call between backward and the optimizer step)."""
        if self.dist.active:
            self._dense()
            for m in self.tables:
                self._rows(m)
            self.counted.steps += 1
        for seen in self._looked_up.values():
            seen.clear()

    def _dense(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.dense]
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.dist.all_sum(flat).div_(self.dist.world)
        self.counted.dense += flat.numel() * flat.element_size()
        offset = 0
        for p in self.dense:
            n = p.numel()
            p.grad = flat[offset:offset + n].view_as(p).clone()
            offset += n

    def _rows(self, table: nn.Embedding) -> None:
        seen = self._looked_up[id(table)]
        ids = torch.unique(torch.cat(seen)) if seen else torch.zeros(0, dtype=torch.int64)
        w = table.weight
        if w.grad is None:
            w.grad = torch.zeros_like(w)
        values = w.grad[ids]  # (U, D): every other row of this rank's gradient is zero
        all_ids, all_values = self.dist.gather_padded(ids), self.dist.gather_padded(values)
        longest = max(len(i) for i in all_ids)
        self.counted.rows += longest * (ids.element_size() + w.shape[1] * values.element_size())
        self.counted.rows_touched += len(ids)
        w.grad[ids] = 0
        for i, v in zip(all_ids, all_values, strict=True):
            w.grad.index_add_(0, i, v)
        w.grad.div_(self.dist.world)

    def close(self) -> None:
        for h in self._hooks:
            h.remove()
