"""Building blocks the multi-task models are assembled from (training/modeling/model.py, ple.py).

Each expert's and gate's first Linear sees the whole concatenated input (B, D), so the export can
later split that layer by input source (x·W = u·W_u + i·W_i) without changing the blocks.
"""

from __future__ import annotations

import torch
import torch.nn as nn


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

    # Per-feature blocks. Each input feature owns one contiguous slice of forward's output and that
    # slice depends on that feature alone; the export splits first layers by these slices
    # (training/bundle/split.py). A new encoding must keep both methods true to forward.

    def feature_slices(self) -> list[slice]:
        """The output columns of each feature: categorical features first, then numeric, in input order."""
        n_cat = len(self.offsets)
        dim = self.embedding.embedding_dim if self.embedding is not None else 0
        cats = [slice(j * dim, (j + 1) * dim) for j in range(n_cat)]
        return cats + [slice(n_cat * dim + f, n_cat * dim + f + 1) for f in range(self.out_dim - n_cat * dim)]

    def embed(self, categorical: torch.Tensor, numeric: torch.Tensor, cat_cols: list[int],
              num_cols: list[int]) -> torch.Tensor:
        """forward's blocks of some features only, from their own columns.

        (B, len(cat_cols)) int64, (B, len(num_cols)) float32 -> (B, their widths summed), the blocks in
        the order categorical cat_cols, then numeric num_cols (as forward lays them out).
        """
        parts = []
        if cat_cols:
            offsets = self.offsets[torch.tensor(cat_cols, dtype=torch.long)]
            parts.append(self.embedding(categorical + offsets).flatten(1))  # (B, c*D)
        if num_cols:
            parts.append(numeric)  # (B, f)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


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


def mix(gate: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Gate-weighted sum of expert outputs: (B, E) x (B, E, H) -> (B, H)."""
    return torch.einsum("be,beh->bh", gate, experts)
