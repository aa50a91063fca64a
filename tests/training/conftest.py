"""Helpers for tests of the training side."""

from __future__ import annotations

import dataclasses

from training.fit.train import Trained, evaluate, model_args
from training.modeling.model import build_model
from training.spec.model import ModelConfig


def as_arch(trained: Trained, arch: str, **keys: object) -> Trained:
    """The tiny run's data and history with an untrained model of another arch, evaluated for real
    (report and export mechanics, not quality)."""
    spec = trained.spec.model_copy(deep=True)
    spec.model = ModelConfig.model_validate({**spec.model.model_dump(), "arch": arch, "num_experts": None,
                                             "expert_dropout": None, **keys})
    args = model_args(spec, trained.prepared.encoders, trained.prepared.train.numeric)
    model = build_model(args).eval()
    metrics = {s: evaluate(model, getattr(trained.prepared, s), spec, trained.prepared.scalers)
               for s in ("valid", "test")}
    return dataclasses.replace(trained, spec=spec, args=args, model=model, metrics=metrics)
