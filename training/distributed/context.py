"""One training process among several: rank, world size and the collectives the trainer uses.

torchrun (or `ranker train --nproc N`, which runs it) starts the processes and sets RANK, WORLD_SIZE,
LOCAL_RANK and the rendezvous address; `Dist.from_env` joins them into one process group, gloo on CPU
and nccl when CUDA is present. A run without them is one process: every collective is then the
identity, and nothing is initialized.

The trainer's model and batches stay on the CPU (training/ has no GPU code path); with nccl the
collectives stage their buffers on the local GPU, which nccl requires.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

TIMEOUT = timedelta(minutes=30)


def backend_for(cuda: bool) -> str:
    """nccl when CUDA is present, else gloo."""
    return "nccl" if cuda else "gloo"


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: a single process

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Dist:
        """Join the process group torchrun describes in the environment; one process without it."""
        env = os.environ if env is None else env
        world = int(env.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        backend = backend_for(torch.cuda.is_available())
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=TIMEOUT)
        return cls(dist.get_rank(), dist.get_world_size(), int(env.get("LOCAL_RANK", "0")), backend)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_leader(self) -> bool:
        """Rank 0: the one process that evaluates, exports and publishes."""
        return self.rank == 0

    def _dev(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(f"cuda:{self.local_rank}") if self.backend == "nccl" else t

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """The elementwise sum over ranks (in place for CPU tensors under gloo)."""
        if not self.active:
            return t
        buf = self._dev(t)
        dist.all_reduce(buf, op=dist.ReduceOp.SUM)
        if buf is not t:
            t.copy_(buf.cpu())
        return t

    def min_int(self, x: int) -> int:
        if not self.active:
            return x
        t = self._dev(torch.tensor([x], dtype=torch.int64))
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def broadcast(self, obj: object) -> object:
        """Rank 0's `obj` on every rank (a decision every rank must take alike)."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self._dev(torch.zeros(1)).device)
        return box[0]

    def all_gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Each rank's `t` (same shape on every rank), in rank order."""
        if not self.active:
            return [t]
        buf = self._dev(t.contiguous())
        out = [torch.empty_like(buf) for _ in range(self.world)]
        dist.all_gather(out, buf)
        return [o.cpu() for o in out]

    def gather_padded(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Each rank's `t` (same trailing shape, any length), in rank order: padded to the longest, gathered."""
        if not self.active:
            return [t]
        sizes = [int(s) for s in self.all_gather(torch.tensor([len(t)], dtype=torch.int64))]
        padded = torch.zeros((max(sizes), *t.shape[1:]), dtype=t.dtype)
        padded[:len(t)] = t
        return [g[:n] for g, n in zip(self.all_gather(padded), sizes, strict=True)]

    def gather_rows(self, positions: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
        """A split's rows from every rank's share: rank r computed `values` for its `positions`; every rank
        gets the whole (n, ...) array."""
        if not self.active:
            return values
        pos = self.gather_padded(torch.from_numpy(np.ascontiguousarray(positions, dtype=np.int64)))
        vals = self.gather_padded(torch.from_numpy(np.ascontiguousarray(values)))
        out = np.empty((n, *values.shape[1:]), dtype=values.dtype)
        for p, v in zip(pos, vals, strict=True):
            out[p.numpy()] = v.numpy()
        return out

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers everywhere, so every rank starts from the same model."""
        if not self.active:
            return
        for t in [*module.parameters(), *module.buffers()]:
            buf = self._dev(t.data)
            dist.broadcast(buf, src=0)
            if buf is not t.data:
                t.data.copy_(buf.cpu())

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()
