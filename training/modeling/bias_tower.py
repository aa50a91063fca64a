"""The position-bias shallow tower (Zhao et al., "Recommending What Video to Watch Next", RecSys 2019).

An item shown first is clicked more because it was shown first. Trained on such logs, a ranker
learns the old ranking's order. Here a small tower reads only bias features (the position an item
was shown at, the device, ...) and its logit is added to the chosen binary heads' logits in
training, so the bias is explained by the tower and not by the item's features. At serving there
is no tower: the exported graph is the main model alone, with no bias input, and ranks as if every
item were shown at the same position.

Bias features are encoded here and not by the serving encoders: the server never sees them, so
they are not part of the bundle. Categorical values get an embedding each (index 0 = unseen);
numeric values are standardized with training statistics (missing -> 0, the mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.nn as nn

from training.data import DataError
from training.data.splits import Splits
from training.data.tables import as_strings, column_vocabulary
from training.modeling.modules import MLP, FeatureInput
from training.spec import RankerSpec
from training.spec.model import BiasTowerConfig


@dataclass(frozen=True)
class BiasEncoders:
    """Vocabularies of the categorical bias columns and (mean, std) of the numeric ones, from training rows."""

    vocab: dict[str, list[str]]  # column -> values, most frequent first; value i has index i + 1 (0 = unseen)
    stats: dict[str, tuple[float, float]]  # column -> (mean, std)

    def cardinalities(self) -> list[int]:
        return [len(v) + 1 for v in self.vocab.values()]

    def encode(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """Rows of a split -> (N, Cb) int64 and (N, Fb) float32 bias inputs."""
        n = table.num_rows
        cat = np.zeros((n, len(self.vocab)), dtype=np.int64)
        for j, (name, values) in enumerate(self.vocab.items()):
            where = pc.index_in(as_strings(table.column(name)), value_set=pa.array(values, pa.string()))
            cat[:, j] = pc.fill_null(where, -1).to_numpy() + 1
        num = np.zeros((n, len(self.stats)), dtype=np.float32)
        for j, (name, (mean, std)) in enumerate(self.stats.items()):
            x = table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
            num[:, j] = np.where(np.isfinite(x), (x - mean) / std, 0.0)
        return cat, num


def fit_bias_encoders(train: pa.Table, cfg: BiasTowerConfig) -> BiasEncoders:
    for name in cfg.numeric:
        t = train.schema.field(name).type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise DataError(f"column {name!r}: numeric bias feature (model.bias_tower.numeric) must be "
                            f"numeric or boolean, not {t}")
    vocab = {}
    for name in cfg.categorical:
        vocab[name] = column_vocabulary(train.column(name), cfg.max_vocab, min_count=1)
    stats = {}
    for name in cfg.numeric:
        x = train.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
        x = x[np.isfinite(x)]
        std = float(x.std()) if x.size else 1.0
        stats[name] = (float(x.mean()) if x.size else 0.0, std if std > 1e-12 else 1.0)
    return BiasEncoders(vocab, stats)


@dataclass(frozen=True)
class BiasData:
    """The bias inputs of every split, row-aligned with the encoded splits."""

    encoders: BiasEncoders
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (categorical, numeric)


def prepare_bias(splits: Splits, cfg: BiasTowerConfig) -> BiasData:
    """Encoders fitted on the training split; every split's bias inputs."""
    enc = fit_bias_encoders(splits.train, cfg)
    return BiasData(enc, {name: enc.encode(table) for name, table in splits.named().items()})


class BiasTower(nn.Module):
    """Bias features -> one logit per row: (B, Cb) int64, (B, Fb) float32 -> (B,)."""

    def __init__(self, cardinalities: list[int], n_numeric: int, cfg: BiasTowerConfig) -> None:
        super().__init__()
        self.inputs = FeatureInput(cardinalities, n_numeric, cfg.embedding_dim)
        self.mlp = MLP(self.inputs.out_dim, cfg.hidden)
        self.out = nn.Linear(self.mlp.out_dim, 1)
        nn.init.zeros_(self.out.weight)  # starts as "no bias", so early training matches the plain model
        nn.init.zeros_(self.out.bias)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        return self.out(self.mlp(self.inputs(categorical, numeric))).squeeze(-1)


class WithBiasTower(nn.Module):
    """The training graph: the model's raw heads plus the bias logit on the chosen heads. Never exported.

    forward(categorical, numeric, bias_categorical, bias_numeric) -> (B, T) raw heads.
    """

    def __init__(self, model: nn.Module, tower: BiasTower, task_mask: list[bool]) -> None:
        super().__init__()
        self.model = model
        self.tower = tower
        self.register_buffer("task_mask", torch.tensor(task_mask, dtype=torch.float32), persistent=False)

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor,
                bias_categorical: torch.Tensor, bias_numeric: torch.Tensor) -> torch.Tensor:
        raw = self.model(categorical, numeric)  # (B, T)
        return raw + self.tower(bias_categorical, bias_numeric)[:, None] * self.task_mask  # (B, T)


def training_graph(model: nn.Module, spec: RankerSpec, bias: BiasData | None) -> nn.Module:
    """The module the trainer optimizes: the model itself, or the model with its bias tower."""
    cfg = spec.model.bias_tower
    if cfg is None or bias is None:
        return model
    tower = BiasTower(bias.encoders.cardinalities(), len(bias.encoders.stats), cfg)
    return WithBiasTower(model, tower, [t.name in cfg.tasks for t in spec.tasks])
