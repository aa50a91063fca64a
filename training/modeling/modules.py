"""Building blocks the multi-task models are assembled from (training/modeling/model.py, ple.py).

Each expert's and gate's first Linear sees the whole concatenated input (B, D), so the export can
later split that layer by input source (x·W = u·W_u + i·W_i) without changing the blocks. The input
is one contiguous block per feature (its embedding, or its number), whatever the numeric embedding.
An expert with cross layers (DCN-v2) starts with them instead, so that split does not apply to it.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from training.modeling.args import ModelArgs
from training.modeling.numeric import numeric_embedding


class FeatureInput(nn.Module):
    """Embeds every categorical feature (one table, offset per feature) and appends the numerics:
    as scaled numbers (`none`), or embedded per feature (`ple`, `periodic`: training/modeling/numeric.py;
    `ple_auto` embeds the `binned` features only).

    (B, C) int64, (B, F) float32 -> (B, C*D + F), or (B, C*D + F*D) with a numeric embedding
    (B, C*D + F_binned*D + F_rest with `ple_auto`).
    """

    def __init__(self, cardinalities: list[int], n_numeric: int, dim: int, numeric: str = "none",
                 edges: list[list[float]] | None = None, binned: list[int] | None = None) -> None:
        super().__init__()
        offsets = torch.tensor([0, *cardinalities[:-1]] if cardinalities else [], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        # With no categorical features (dense-only inputs, e.g. the synthetic benchmark) there is no table.
        self.embedding = nn.Embedding(sum(cardinalities), dim) if cardinalities else None
        if self.embedding is not None:
            nn.init.normal_(self.embedding.weight, std=0.05)
        self.numeric = numeric_embedding(numeric, n_numeric, dim, edges, binned)
        self.out_dim = len(cardinalities) * dim + (n_numeric if self.numeric is None else self.numeric.out_dim)
        self._widths = [dim] * len(cardinalities) + ([1] * n_numeric if self.numeric is None else self.numeric.widths())

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        num = numeric if self.numeric is None else self.numeric(numeric)  # (B, F) or (B, F*D)
        if self.embedding is None:
            return num
        emb = self.embedding(categorical + self.offsets)  # (B, C, D)
        return torch.cat([emb.flatten(1), num], dim=1)

    # Per-feature blocks. Each input feature owns one contiguous slice of forward's output and that
    # slice depends on that feature alone; the export splits first layers by these slices
    # (training/bundle/split.py). A new encoding must keep both methods true to forward.

    def feature_slices(self) -> list[slice]:
        """The output columns of each feature: categorical features first, then numeric, in input order
        (a numeric feature is 1 column wide, or embedding_dim where it is embedded)."""
        ends = torch.tensor(self._widths, dtype=torch.long).cumsum(0).tolist()
        return [slice(end - w, end) for w, end in zip(self._widths, ends, strict=True)]

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
            parts.append(numeric if self.numeric is None else self.numeric(numeric, num_cols))  # (B, f) or (B, f*D)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


class CrossNet(nn.Module):
    """DCN-v2 cross layers (Wang et al., WWW 2021): x_{l+1} = x_0 * (W_l x_l + b_l) + x_l. (B, D) -> (B, D)

    Each layer multiplies the input by a learned linear function of itself, so the MLP above it
    starts from explicit feature crosses of rising degree.
    """

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        for layer in self.layers:
            nn.init.zeros_(layer.bias)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class MLP(nn.Sequential):
    """Linear -> ReLU (-> Dropout) for each hidden size, after `cross` DCN-v2 cross layers (0: none)."""

    def __init__(self, in_dim: int, hidden: list[int], dropout: float = 0.0, cross: int = 0) -> None:
        layers: list[nn.Module] = [CrossNet(in_dim, cross)] if cross else []
        for h in hidden:
            layers += [nn.Linear(in_dim, h), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            in_dim = h
        super().__init__(*layers)
        self.out_dim = in_dim


def feature_input(args: ModelArgs) -> FeatureInput:
    return FeatureInput(args.cardinalities, args.n_numeric, args.embedding_dim, args.numeric_embedding,
                        args.numeric_edges, args.numeric_binned)


def expert(in_dim: int, args: ModelArgs) -> MLP:
    """One expert (or bottom): cross layers, then the expert_hidden MLP."""
    return MLP(in_dim, args.expert_hidden, args.dropout, args.cross_layers)


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
