"""Embeddings of numeric features (Gorishniy et al., NeurIPS 2022, "On Embeddings for Numerical
Features in Tabular Deep Learning"), so a model sees more than one scaled number per feature.

`ple`       piecewise-linear encoding over quantile bins fitted on the training split (feature_edges): feature j's
            value x becomes T_j numbers, bin t's being clamp((x - b_t) / (b_{t+1} - b_t), 0, 1), then a
            per-feature Linear + ReLU to `dim`. The bin edges are buffers: constants in the exported
            graph, and stored in the manifest's `model_args` so the model rebuilds without the data.
`ple_auto`  `ple` for the features that need bins (needs_bins: zero-inflated or heavy-tailed on the
            training split; binned_features), the others as their scaled number, as with `none`.
`periodic`  sin / cos of trainable frequencies (k per feature), then a per-feature Linear + ReLU ("PLR").

All read the encoder's standardized value (service/contract/features.py clips it to the training
range first), and give each feature its own contiguous block: `dim` outputs for an embedded
feature, 1 for a feature `ple_auto` leaves as a number: (B, F) -> (B, F * dim) or (B, F_binned * dim + F_rest).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

NUMERIC_EMBEDDINGS = ("none", "ple", "ple_auto", "periodic")
# needs_bins: a feature is binned when one value holds at least MODE_SHARE of the training rows (the zeros of a
# money column) or its excess kurtosis is at least KURTOSIS (a long tail); 0 for a normal, 6 for an exponential.
MODE_SHARE = 0.5
KURTOSIS = 20.0


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


def tail_stats(x: np.ndarray) -> dict[str, float]:
    """One feature's (N,) training values: the share of rows holding its most frequent value, and its excess
    kurtosis (0 for a constant). Both are unchanged by the encoder's standardization."""
    _, counts = np.unique(x, return_counts=True)
    sd = x.std()
    kurtosis = float(((x - x.mean()) ** 4).mean() / sd**4 - 3.0) if sd > 0 else 0.0
    return {"mode_share": float(counts.max() / x.size), "kurtosis": kurtosis}


def needs_bins(x: np.ndarray) -> bool:
    """Does one feature's (N,) training column need piecewise-linear bins? Zero-inflated (one value holds at
    least MODE_SHARE of the rows) or heavy-tailed (excess kurtosis at least KURTOSIS). Never a column of two
    values or fewer (a flag): one bin between them says no more than the number."""
    if np.unique(x).size <= 2:
        return False
    stats = tail_stats(x)
    return stats["mode_share"] >= MODE_SHARE or stats["kurtosis"] >= KURTOSIS


def binned_features(numeric: np.ndarray) -> list[int]:
    """`ple_auto`: the indices of the (N, F) standardized training numerics that needs_bins picks."""
    return [j for j in range(numeric.shape[1]) if needs_bins(numeric[:, j].astype(np.float64))]


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

    def widths(self) -> list[int]:
        """Output columns of each feature."""
        return [self.out_dim // self.left.shape[0]] * self.left.shape[0]

    def forward(self, x: torch.Tensor, cols: list[int] | None = None) -> torch.Tensor:
        """cols: x holds only these features (the split graph embeds user and item features apart)."""
        left, width = (self.left, self.width) if cols is None else (self.left[cols], self.width[cols])
        bins = ((x.unsqueeze(-1) - left) / width).clamp(0.0, 1.0)  # (B, F, T)
        return torch.relu(self.linear(bins, cols)).flatten(1)  # (B, F*D)


class SomePiecewiseLinear(nn.Module):
    """`ple_auto`: PiecewiseLinear for the `binned` features, the others as their number, each feature's block
    in input order. (B, F) -> (B, F_binned * D + F_rest)."""

    def __init__(self, n_features: int, binned: list[int], edges: list[list[float]], dim: int) -> None:
        super().__init__()
        self.n_features, self.binned, self.dim = n_features, list(binned), dim
        self.ple = PiecewiseLinear(edges, dim)  # over the binned features only, in their order
        self.out_dim = len(binned) * dim + n_features - len(binned)

    def widths(self) -> list[int]:
        """Output columns of each of the n_features features."""
        return [self.dim if j in self.binned else 1 for j in range(self.n_features)]

    def forward(self, x: torch.Tensor, cols: list[int] | None = None) -> torch.Tensor:
        """cols: x holds only these features (the split graph embeds user and item features apart)."""
        cols = list(range(self.n_features)) if cols is None else cols
        at = [i for i, j in enumerate(cols) if j in self.binned]  # x's columns to bin
        if not at:
            return x
        inner = [self.binned.index(cols[i]) for i in at]
        emb = self.ple(x[:, at], None if inner == list(range(len(self.binned))) else inner)  # (B, len(at)*D)
        pieces, k = [], 0
        for i in range(len(cols)):
            if k < len(at) and at[k] == i:
                pieces.append(emb[:, k * self.dim:(k + 1) * self.dim])
                k += 1
            else:
                pieces.append(x[:, i:i + 1])
        return torch.cat(pieces, dim=1)


class Periodic(nn.Module):
    """sin/cos of k trainable frequencies per feature, then a per-feature Linear + ReLU. (B, F) -> (B, F*D)."""

    def __init__(self, n_features: int, dim: int, frequencies: int = 16, sigma: float = 0.1) -> None:
        super().__init__()
        self.freq = nn.Parameter(torch.randn(n_features, frequencies) * sigma)  # (F, k)
        self.linear = PerFeatureLinear(n_features, 2 * frequencies, dim)
        self.out_dim = n_features * dim

    def widths(self) -> list[int]:
        """Output columns of each feature."""
        return [self.out_dim // self.freq.shape[0]] * self.freq.shape[0]

    def forward(self, x: torch.Tensor, cols: list[int] | None = None) -> torch.Tensor:
        """cols: x holds only these features (the split graph embeds user and item features apart)."""
        freq = self.freq if cols is None else self.freq[cols]
        angle = 2 * math.pi * freq * x.unsqueeze(-1)  # (B, F, k)
        return torch.relu(self.linear(torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1), cols)).flatten(1)


def numeric_embedding(kind: str, n_numeric: int, dim: int, edges: list[list[float]] | None,
                      binned: list[int] | None = None) -> nn.Module | None:
    """The embedding module of `kind`, or None for `none` and for `ple_auto` with no feature binned (numerics
    enter as scaled numbers). edges: per numeric feature (`ple`), per binned feature (`ple_auto`)."""
    if kind == "none":
        return None
    if kind == "ple_auto":
        if binned is None or edges is None or len(edges) != len(binned):
            raise ValueError("numeric_embedding ple_auto needs the binned features and bin edges for each of them")
        if sorted(set(binned)) != list(binned) or any(not 0 <= j < n_numeric for j in binned):
            raise ValueError(f"numeric_embedding ple_auto: binned features {binned} must be increasing indices "
                             f"below {n_numeric}")
        return SomePiecewiseLinear(n_numeric, binned, edges, dim) if binned else None
    if kind == "ple":
        if edges is None or len(edges) != n_numeric:
            raise ValueError(f"numeric_embedding ple needs bin edges for each of the {n_numeric} numeric features")
        return PiecewiseLinear(edges, dim)
    if kind == "periodic":
        return Periodic(n_numeric, dim)
    raise ValueError(f"unknown numeric_embedding {kind!r}; expected one of {', '.join(NUMERIC_EMBEDDINGS)}")
