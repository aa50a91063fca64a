"""Embeddings of numeric features (Gorishniy et al., NeurIPS 2022, "On Embeddings for Numerical
Features in Tabular Deep Learning"), so a model sees more than one scaled number per feature.

`ple`       piecewise-linear encoding over quantile bins fitted on the training split (feature_edges): feature j's
            value x becomes T_j numbers, bin t's being clamp((x - b_t) / (b_{t+1} - b_t), 0, 1), then a
            per-feature Linear + ReLU to `dim`. The bin edges are buffers: constants in the exported
            graph, and stored in the manifest's `model_args` so the model rebuilds without the data.
`periodic`  sin / cos of trainable frequencies (k per feature), then a per-feature Linear + ReLU ("PLR").

Both read the encoder's standardized value (service/contract/features.py clips it to the training
range first), and both give each feature its own contiguous block of `dim` outputs:
(B, F) -> (B, F * dim).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

NUMERIC_EMBEDDINGS = ("none", "ple", "periodic")


def feature_edges(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Increasing bin edges of one feature's (N,) training values: <= n_bins + 1 of them.

    The quantiles 0, 1/n, ..., 1, made distinct. A value that holds a large share of the rows (a money
    column that is 92 % zeros) swallows several quantiles; the bins it would cost are spent on the
    quantiles of the values strictly between the edges found, so a heavy-tailed column keeps its
    resolution where its other values are (Gorishniy et al. use target-aware tree bins for the same end).
    """
    e = np.unique(np.quantile(x, np.linspace(0.0, 1.0, n_bins + 1)))
    missing = n_bins + 1 - e.size
    rest = x[~np.isin(x, e)]
    if missing > 0 and rest.size:
        e = np.unique(np.concatenate([e, np.quantile(rest, np.linspace(0.0, 1.0, missing + 2)[1:-1])]))
    return e


def quantile_edges(numeric: np.ndarray, n_bins: int) -> list[list[float]]:
    """Per feature, the bin edges of feature_edges: <= n_bins + 1 increasing values.

    Args:
        numeric: (N, F) standardized training values.
    Returns:
        F lists of increasing edges; a constant feature gets [v, v] (one empty bin).
    """
    edges = []
    for j in range(numeric.shape[1]):
        e = feature_edges(numeric[:, j].astype(np.float64), n_bins)
        edges.append([float(v) for v in (e if e.size > 1 else np.repeat(e, 2))])
    return edges


class PerFeatureLinear(nn.Module):
    """An independent Linear per feature: (B, F, K) -> (B, F, D)."""

    def __init__(self, n_features: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n_features, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, cols: list[int] | None = None) -> torch.Tensor:
        """cols: only these features' Linears (x then holds only their rows of K)."""
        w, b = (self.weight, self.bias) if cols is None else (self.weight[cols], self.bias[cols])
        return torch.einsum("bfk,fkd->bfd", x, w) + b


class PiecewiseLinear(nn.Module):
    """Piecewise-linear encoding over fixed bins, then a per-feature Linear + ReLU. (B, F) -> (B, F*D)."""

    def __init__(self, edges: list[list[float]], dim: int) -> None:
        super().__init__()
        n_bins = max(len(e) for e in edges) - 1
        # Features with fewer distinct quantiles are padded with empty bins at their top edge: after the
        # encoder's clipping no value exceeds that edge, so a padded bin always encodes as 0.
        padded = [e + [e[-1]] * (n_bins + 1 - len(e)) for e in edges]
        e = torch.tensor(padded, dtype=torch.float32)  # (F, T + 1)
        # Not in the state_dict: the edges come from model_args, so a warm start that copies weights by
        # name cannot pair this night's edges with last night's.
        self.register_buffer("left", e[:, :-1].clone(), persistent=False)  # (F, T)
        self.register_buffer("width", (e[:, 1:] - e[:, :-1]).clamp_min(1e-6), persistent=False)  # (F, T)
        self.linear = PerFeatureLinear(len(edges), n_bins, dim)
        self.out_dim = len(edges) * dim

    def forward(self, x: torch.Tensor, cols: list[int] | None = None) -> torch.Tensor:
        """cols: x holds only these features (the split graph embeds user and item features apart)."""
        left, width = (self.left, self.width) if cols is None else (self.left[cols], self.width[cols])
        bins = ((x.unsqueeze(-1) - left) / width).clamp(0.0, 1.0)  # (B, F, T)
        return torch.relu(self.linear(bins, cols)).flatten(1)  # (B, F*D)


class Periodic(nn.Module):
    """sin/cos of k trainable frequencies per feature, then a per-feature Linear + ReLU. (B, F) -> (B, F*D)."""

    def __init__(self, n_features: int, dim: int, frequencies: int = 16, sigma: float = 0.1) -> None:
        super().__init__()
        self.freq = nn.Parameter(torch.randn(n_features, frequencies) * sigma)  # (F, k)
        self.linear = PerFeatureLinear(n_features, 2 * frequencies, dim)
        self.out_dim = n_features * dim

    def forward(self, x: torch.Tensor, cols: list[int] | None = None) -> torch.Tensor:
        """cols: x holds only these features (the split graph embeds user and item features apart)."""
        freq = self.freq if cols is None else self.freq[cols]
        angle = 2 * math.pi * freq * x.unsqueeze(-1)  # (B, F, k)
        return torch.relu(self.linear(torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1), cols)).flatten(1)


def numeric_embedding(kind: str, n_numeric: int, dim: int, edges: list[list[float]] | None) -> nn.Module | None:
    """The embedding module of `kind`, or None for `none` (numerics enter as scaled numbers)."""
    if kind == "none":
        return None
    if kind == "ple":
        if edges is None or len(edges) != n_numeric:
            raise ValueError(f"numeric_embedding ple needs bin edges for each of the {n_numeric} numeric features")
        return PiecewiseLinear(edges, dim)
    if kind == "periodic":
        return Periodic(n_numeric, dim)
    raise ValueError(f"unknown numeric_embedding {kind!r}; expected one of {', '.join(NUMERIC_EMBEDDINGS)}")
