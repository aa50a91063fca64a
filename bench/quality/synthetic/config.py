"""What the synthetic benchmark runs: generator and training settings, the models."""

from __future__ import annotations

from dataclasses import dataclass

from bench.quality.common import RESULTS_DIR

SECTION = "quality-synthetic"
RESULTS = RESULTS_DIR / "synthetic.json"
# name -> (arch, expert dropout); the paper's MMoE has no expert dropout, ours defaults to 0.1.
MODELS = {"mmoe": ("mmoe", 0.0), "omoe": ("omoe", 0.0), "shared_bottom": ("shared_bottom", 0.0),
          "mmoe_ed0.1": ("mmoe", 0.1)}
PAPER_MODELS = ("mmoe", "omoe", "shared_bottom")
@dataclass(frozen=True)
class SynthConfig:
    d: int = 100
    c: float = 1.0  # scale of w_t; the paper does not print its value
    m: int = 10  # number of sinusoids; the paper does not print its value
    noise_var: float = 0.01
    n_train: int = 10_000
    n_test: int = 5_000
    correlations: tuple[float, ...] = (1.0, 0.9, 0.5)
    models: tuple[str, ...] = tuple(MODELS)
    runs: int = 30
    experts: int = 8
    expert_units: int = 16
    tower_units: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    steps: int = 3000
    eval_every: int = 100
    seed: int = 0


def smoke_config() -> SynthConfig:
    return SynthConfig(n_train=1000, n_test=500, runs=2, steps=60, eval_every=20)
