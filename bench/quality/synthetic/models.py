"""training/modeling/model.py's models on dense-only input, with the shared-bottom sized to the MMoE's parameters."""

from __future__ import annotations

import torch

from bench.quality.synthetic.config import MODELS, SynthConfig
from training.modeling.model import ModelArgs, build_model


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_args(name: str, cfg: SynthConfig, bottom_units: int | None = None) -> ModelArgs:
    arch, expert_dropout = MODELS[name]
    hidden = [bottom_units or cfg.expert_units] if arch == "shared_bottom" else [cfg.expert_units]
    return ModelArgs(cardinalities=[], n_numeric=cfg.d, tasks=["y1", "y2"], arch=arch,
                     num_experts=cfg.experts, expert_hidden=hidden, tower_hidden=[cfg.tower_units],
                     expert_dropout=expert_dropout)


def shared_bottom_units(cfg: SynthConfig) -> int:
    """Width of the shared-bottom layer whose parameter count is closest to the MMoE's."""
    target = n_params(build_model(model_args("mmoe", cfg)))
    return min(range(1, 4 * cfg.experts * cfg.expert_units),
               key=lambda h: abs(n_params(build_model(model_args("shared_bottom", cfg, h))) - target))
