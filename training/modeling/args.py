"""ModelArgs: the configuration every model is built from, stored in the bundle manifest as `model_args`.

Its own module, so the blocks (modules.py, ple.py) and the models that assemble them (model.py) all
read it without importing one another in a circle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ModelArgs:
    """Everything needed to rebuild a model; stored in the bundle manifest as `model_args`."""

    cardinalities: list[int]  # embedding rows per categorical feature (incl. the OOV slot)
    n_numeric: int
    tasks: list[str]
    arch: str = "mmoe"  # mmoe | omoe | cgc | ple | shared_bottom | single_task
    # None where a key means nothing for the arch (the spec refuses such keys; see spec.ARCH_KEYS).
    num_experts: int | None = 4  # mmoe / omoe
    expert_hidden: list[int] = field(default_factory=lambda: [128, 64])
    tower_hidden: list[int] = field(default_factory=lambda: [64])
    embedding_dim: int = 16
    expert_dropout: float | None = 0.1  # gated archs: probability of zeroing each gate weight while training
    dropout: float = 0.0
    shared_experts: int | None = 2  # cgc / ple: shared experts per level
    task_experts: int | None = 1  # cgc / ple: experts of each task per level
    levels: int | None = 2  # ple: extraction levels (cgc is one level)
    # Numeric features as scaled numbers ("none") or embedded per feature ("ple", "ple_auto", "periodic";
    # modeling/numeric.py).
    numeric_embedding: str = "none"
    # ple: bin edges per numeric feature (standardized units); ple_auto: per binned feature
    numeric_edges: list[list[float]] | None = None
    numeric_binned: list[int] | None = None  # ple_auto: indices of the numeric features binned (chosen in training)
    cross_layers: int = 0  # DCN-v2 cross layers at the bottom of every expert (or shared / per-task bottom)

    def to_dict(self) -> dict:
        return asdict(self)
