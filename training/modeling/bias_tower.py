"""The position-bias shallow tower (Zhao et al., "Recommending What Video to Watch Next", RecSys 2019).

An item shown first is clicked more because it was shown first. Trained on such logs, a ranker
learns the old ranking's order. Here a small tower reads only bias features (the position an item
was shown at, the device, ...) and its logit is added to the chosen binary heads' logits in
training, so the bias is explained by the tower and not by the item's features. At serving there
is no tower: the exported graph is the main model alone, with no bias input, and ranks as if every
item were shown at the same position.

Its inputs (encoders fitted on training rows, each split encoded) are data: training/data/bias_inputs.py.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from training.data.bias_inputs import BiasData
from training.modeling.modules import MLP, FeatureInput
from training.spec import RankerSpec
from training.spec.model import BiasTowerConfig


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
