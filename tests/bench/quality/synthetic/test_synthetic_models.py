"""Model arguments on dense-only input, and the shared-bottom sized to the MMoE's parameter count."""

from __future__ import annotations

from bench.quality.synthetic.config import SynthConfig
from bench.quality.synthetic.models import model_args, n_params, shared_bottom_units
from training.modeling.model import build_model


def test_shared_bottom_is_sized_to_the_mmoe_parameter_count() -> None:
    cfg = SynthConfig()
    mmoe = n_params(build_model(model_args("mmoe", cfg)))
    sb = n_params(build_model(model_args("shared_bottom", cfg, shared_bottom_units(cfg))))
    assert abs(sb - mmoe) / mmoe < 0.01
    assert n_params(build_model(model_args("omoe", cfg))) < mmoe  # one gate instead of two


def test_mmoe_ed_variant_differs_only_in_expert_dropout() -> None:
    cfg = SynthConfig()
    plain, ed = model_args("mmoe", cfg), model_args("mmoe_ed0.1", cfg)
    assert (plain.expert_dropout, ed.expert_dropout) == (0.0, 0.1)
    assert {**vars(plain), "expert_dropout": 0.1} == vars(ed)
