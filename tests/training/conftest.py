"""Helpers for tests of the training side."""

from __future__ import annotations

import dataclasses

from training.fit.train import Trained, evaluate, model_args
from training.modeling.model import build_model
from training.modeling.numeric import quantile_edges
from training.spec import RankerSpec
from training.spec.model import ModelConfig


def pointwise(spec: RankerSpec) -> RankerSpec:
    """The spec without its ranking head (model.ranking_head: false): tests that build heads by hand."""
    return spec.without_ranking()


def as_arch(trained: Trained, arch: str, **keys: object) -> Trained:
    """The tiny run's data and history with an untrained model of another arch, evaluated for real
    (report and export mechanics, not quality)."""
    spec = trained.spec.model_copy(deep=True)
    own = {"numeric_bins": None, "numeric_binned": None} if "numeric_embedding" in keys else {}  # its own defaults
    spec.model = ModelConfig.model_validate({**spec.model.model_dump(), "arch": arch, "num_experts": None,
                                             "expert_dropout": None, **own, **keys})
    args = model_args(spec, trained.prepared.encoders, trained.prepared.train.numeric)
    model = build_model(args).eval()
    metrics = {s: evaluate(model, getattr(trained.prepared, s), spec, trained.prepared.scalers)
               for s in ("valid", "test")}
    return dataclasses.replace(trained, spec=spec, args=args, model=model, metrics=metrics)


def as_ple_auto(trained: Trained, binned: list[int]) -> Trained:
    """The tiny run's data with an untrained `numeric_embedding: ple_auto` MMoE that binned the numeric features
    `binned` (the demo data has no column the rule picks; the tests choose them), evaluated for real."""
    base = as_arch(trained, "mmoe", num_experts=2, expert_dropout=0.1, numeric_embedding="ple_auto", numeric_bins=8)
    edges = quantile_edges(trained.prepared.train.numeric[:, binned], 8)
    args = dataclasses.replace(base.args, numeric_binned=list(binned), numeric_edges=edges)
    model = build_model(args).eval()
    metrics = {s: evaluate(model, getattr(trained.prepared, s), base.spec, trained.prepared.scalers)
               for s in ("valid", "test")}
    return dataclasses.replace(base, args=args, model=model, metrics=metrics)
