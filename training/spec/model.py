"""The spec's `model:` and `train:` sections: the network's shape and how it is trained.

Architecture keys mean something only for some archs (`ARCH_KEYS`): such a key set for another
arch is an error, since the model would silently ignore it; for its own archs it gets its default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

Arch = Literal["mmoe", "omoe", "cgc", "ple", "shared_bottom", "single_task"]
GATED = ("mmoe", "omoe", "cgc", "ple")
# key -> (the archs it means something for, its default there)
ARCH_KEYS: dict[str, tuple[tuple[str, ...], object]] = {
    "num_experts": (("mmoe", "omoe"), 4),
    "shared_experts": (("cgc", "ple"), 2),
    "task_experts": (("cgc", "ple"), 1),
    "levels": (("ple",), 2),
    "expert_dropout": (GATED, 0.1),
}
NEEDS_SHARING = ("gradnorm", "pcgrad", "mgda")  # balancers that work on what the tasks share


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class BiasTowerConfig(_Strict):
    """A shallow tower over bias columns (e.g. the logged position); its logit joins chosen binary heads in training only."""

    # Zhao et al., RecSys 2019. It is not exported: the served model has no bias input.

    categorical: list[str] = Field(default_factory=list, description="bias columns embedded per value",
                                   examples=[["position"]])
    numeric: list[str] = Field(default_factory=list, description="bias columns used as standardized numbers",
                               examples=[["position"]])
    tasks: list[str] = Field(min_length=1, description="binary tasks whose training logit gets the bias logit",
                             examples=[["click"]])
    hidden: list[int] = Field(default_factory=lambda: [16], description="the tower's hidden layer widths",
                              examples=[[8]])
    embedding_dim: int = Field(4, ge=1, description="embedding width of each categorical bias column", examples=[8])
    max_vocab: int = Field(1000, ge=1, description="values kept per categorical bias column; the rest share OOV",
                           examples=[50])

    @model_validator(mode="after")
    def _some_feature(self) -> BiasTowerConfig:
        columns = self.columns()
        if not columns:
            raise ValueError("bias_tower needs at least one categorical or numeric bias column")
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValueError(f"bias feature names must be unique, repeated: {repeated}")
        return self

    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric]


class ModelConfig(_Strict):
    """The network: embeddings -> shared part (experts or a bottom) -> one tower per task."""

    arch: Arch = Field(
        "mmoe", description="`mmoe`: experts with one softmax gate per task (Ma et al., KDD 2018); `omoe`: "
        "experts with one gate shared by all tasks; `cgc`: each task's own experts beside shared ones, one "
        "gate per task over both; `ple`: `levels` stacked CGC levels (Tang et al., RecSys 2020); "
        "`shared_bottom`: one MLP shared by all tasks; `single_task`: an independent bottom and tower per "
        "task (no sharing), to check whether multi-task learning helps", examples=["ple"])
    num_experts: int | None = Field(
        None, ge=1, description="`mmoe`/`omoe`: experts shared by every task (default 4); an error for "
        "the other archs", examples=[8])
    shared_experts: int | None = Field(
        None, ge=1, description="`cgc`/`ple`: shared experts per level (default 2); an error for the other archs",
        examples=[4])
    task_experts: int | None = Field(
        None, ge=1, description="`cgc`/`ple`: experts of each task per level (default 1); an error for the "
        "other archs", examples=[2])
    levels: int | None = Field(
        None, ge=1, description="`ple`: extraction levels (default 2); an error for the other archs", examples=[3])
    expert_hidden: list[int] = Field(
        default_factory=lambda: [128, 64], min_length=1,
        description="hidden layer widths of the shared part: of each expert (`mmoe`, `omoe`; `cgc`, `ple`: "
        "every expert of every level), of the shared bottom (`shared_bottom`), of each task's own bottom "
        "(`single_task`)", examples=[[256, 128]])
    tower_hidden: list[int] = Field(default_factory=lambda: [64], description="hidden layer widths of each "
                                    "task's tower, on top of the shared part ([] = a linear head)", examples=[[32]])
    embedding_dim: int = Field(16, ge=1, description="embedding width of every categorical feature", examples=[32])
    expert_dropout: float | None = Field(
        None, ge=0, lt=1, description="`mmoe`/`omoe`/`cgc`/`ple`: while training, each gate weight is zeroed "
        "with this probability and the gate renormalized, against gate polarization (Zhao et al., RecSys "
        "2019); default 0.1; an error for `shared_bottom`/`single_task`", examples=[0.0])
    dropout: float = Field(0.0, ge=0, lt=1, description="ordinary dropout after every hidden layer",
                           examples=[0.1])
    numeric_embedding: Literal["none", "ple", "ple_auto", "periodic"] = Field(
        "ple_auto", description="how numeric features enter the model: `none` as one standardized number each; "
        "`ple` piecewise-linear encoding over quantile bins of the training split (a value holding many "
        "rows, such as the zeros of a money column, leaves its bins to the other values), `periodic` sin/cos of "
        "learned frequencies, each followed by a per-feature Linear + ReLU to `embedding_dim` (Gorishniy et "
        "al., NeurIPS 2022); `ple_auto` `ple` only for the features that need it on the training split: "
        "zero-inflated (one value holds >= 50 % of the rows) or heavy-tailed (excess kurtosis >= 20), never a "
        "column of <= 2 values; the others as with `none` (the report and the manifest's `model_args."
        "numeric_binned` say which; the default, chosen in docs/BENCHMARKS.md \"Quality 7\"). All live inside "
        "the exported graph. A streamed run fits the bins on a uniform sample of up to 200,000 training rows (fewer for a "
        "table of more than 100 numeric features: at most 20 million values)",
        examples=["none"])
    numeric_bins: int | None = Field(
        None, ge=2, le=256, description="`numeric_embedding: ple` / `ple_auto`: quantile bins per binned numeric "
        "feature (default 16; fewer where a feature has fewer distinct quantiles); an error otherwise",
        examples=[32])
    numeric_binned: list[str] | None = Field(
        None, description="`numeric_embedding: ple_auto`: bin exactly these numeric features instead of the ones "
        "the rule picks ([] = none); an error otherwise. `ranker retrain --warm-start` keeps CURRENT's choice "
        "this way when the spec leaves it out", examples=[["capital_gain", "capital_loss"]])
    cross_layers: int = Field(
        0, ge=0, le=8, description="DCN-v2 cross layers (Wang et al., WWW 2021) at the bottom of every expert "
        "(`shared_bottom`, `single_task`: of the bottom); 0 = none", examples=[2])
    bias_tower: BiasTowerConfig | None = Field(
        None, description="a training-only tower over bias columns such as the logged position; not exported",
        examples=[{"categorical": ["position"], "tasks": ["click"]}])
    ranking_head: bool | None = Field(
        None, description="a head trained listwise on each request's candidates, on the NDCG gain "
        "(`eval.gain_weights`), beside the pointwise heads: a task named `rank` (type `ranking`). Default "
        "(unset): on when the data has requests (`data.request_id`) and no task is of type `ranking`; `false` "
        "turns it off. Declare a `ranking` task to name or tune it", examples=[False])

    @field_validator(*ARCH_KEYS)
    @classmethod
    def _means_something(cls, value: object, info: ValidationInfo) -> object:
        """A key set for an arch it means nothing for is an error (it would be silently ignored)."""
        archs, _ = ARCH_KEYS[info.field_name]
        arch = info.data.get("arch")
        if value is not None and arch is not None and arch not in archs:
            raise ValueError(f"means nothing for arch {arch!r} (it applies to {', '.join(archs)}); remove it")
        return value

    @model_validator(mode="after")
    def _arch_defaults(self) -> ModelConfig:
        for key, (archs, default) in ARCH_KEYS.items():
            if self.arch in archs and getattr(self, key) is None:
                setattr(self, key, default)
        binned = self.numeric_embedding in ("ple", "ple_auto")
        if self.numeric_binned is not None and self.numeric_embedding != "ple_auto":
            raise ValueError("model.numeric_binned: means something only with numeric_embedding: ple_auto; remove it")
        if binned and self.numeric_bins is None:
            self.numeric_bins = 16
        elif not binned and self.numeric_bins is not None:
            raise ValueError("model.numeric_bins: means something only with numeric_embedding: ple or ple_auto; "
                             "remove it")
        return self


class TrainConfig(_Strict):
    """The optimizer and the training loop."""

    epochs: int = Field(10, ge=1, description="maximum passes over the training rows", examples=[20])
    batch_size: int = Field(1024, ge=1, description="rows per optimizer step", examples=[4096])
    lr: float = Field(1e-3, gt=0, description="Adam learning rate (the peak, with a schedule)", examples=[0.002])
    lr_schedule: Literal["constant", "warmup", "warmup_cosine"] = Field(
        "constant", description="`constant`; `warmup`: linear from 0 to `lr` over `warmup_epochs`, then "
        "constant; `warmup_cosine`: the same warmup, then cosine decay to 0 at the last of `epochs`",
        examples=["warmup_cosine"])
    warmup_epochs: float | None = Field(
        None, gt=0, description="`warmup` / `warmup_cosine`: epochs of linear warmup (default 1; fractions "
        "allowed); an error with `constant`", examples=[0.5])
    weight_decay: float = Field(0.0, ge=0, description="Adam (L2) weight decay on the model's weights; never on "
                                "the loss-balancing weights", examples=[1e-5])
    loss_balancing: Literal["fixed", "uncertainty", "gradnorm", "pcgrad", "mgda"] = Field(
        "fixed", description="how task losses are combined: `fixed` task weights, `uncertainty` (learned, "
        "Kendall et al. 2018), `gradnorm` (Chen et al. 2018), `pcgrad` (conflicting gradients projected "
        "apart, Yu et al. 2020) or `mgda` (MGDA-UB, Sener & Koltun 2018); the last three need shared "
        "parameters and cost up to one backward pass per task", examples=["uncertainty"])
    gradnorm_alpha: float = Field(1.5, ge=0, description="GradNorm's restoring strength (loss_balancing: "
                                  "gradnorm)", examples=[1.0])
    mgda_normalization: Literal["none", "l2", "loss", "loss+"] = Field(
        "loss+", description="how MGDA-UB scales each task's gradient before its min-norm solve (`loss+`: "
        "by loss times gradient norm, as in the authors' code)", examples=["l2"])
    ema_epochs: float | None = Field(
        2.0, gt=0, description="validate, keep and export an exponential moving average of the weights "
        "(Polyak averaging) instead of the raw weights, which training goes on from. The decay per optimizer "
        "step is min(1 - 1/(ema_epochs x steps per epoch), (1 + t)/(10 + t)) at step t, so early in a run "
        "the average spans about the last tenth of the steps taken. `null`: no averaging. "
        "docs/BENCHMARKS.md (\"Quality 7\") measures it", examples=[0.5])
    early_stopping_patience: int = Field(
        2, ge=0, description="stop after this many epochs without a better early-stopping metric; the "
        "best epoch's weights are kept", examples=[3])
    early_stopping_metric: str = Field(
        "loss", description="what early stopping watches on the validation split: `loss` (task-weighted sum "
        "of masked losses), `ndcg` (NDCG@k of the eval score) or a task name (its AUC, or its RMSE; log1p "
        "labels in log1p space)", examples=["like"])
    per_task_stopping: Literal["off", "combine"] = Field(
        "off", description="`combine`: each head's own parts (tower, gate, own experts) from its own best "
        "validation epoch over the shared parts of the best epoch, kept only where that head's validation "
        "metric improves; `off`: every head from the best epoch (the report still lists each head's best "
        "epoch)", examples=["combine"])
    seed: int = Field(0, description="seed of initialization and batch order", examples=[1])
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (and the baselines'); default: "
                                "each epoch of a one-process fit times every core against one fewer and trains on "
                                "the faster (a competing busy process makes every-core threads spin-wait); the "
                                "baselines and torchrun processes use one fewer than the usable cores, at least 1 "
                                "(docs/TRAINING.md, 'threads')", examples=[1])
    parity_rows: int = Field(1000, ge=1, description="rows checked torch vs onnxruntime at export",
                             examples=[2000])
    quantize: Literal["none", "dynamic", "static"] = Field(
        "none", description="also quantize the exported graph to int8 with onnxruntime's tools and serve it "
        "if a holdout gate passes (AUC drop <= 0.002 per binary head, RMSE rise <= 1% per regression head, "
        "top-10 overlap >= 0.95 per served profile); else the fp32 graph is served. `dynamic`: activations "
        "quantized per call; `static`: activation ranges fixed from training rows. `ranker publish "
        "--quantize` does the same to an existing bundle",
        examples=["dynamic"])
    embedding_grads: Literal["rows", "dense"] = Field(
        "rows", description="distributed training (`--nproc`, torchrun): `rows` exchanges only the embedding "
        "rows a step's batches looked up, so the bytes per step scale with the batch, not the vocabulary; "
        "`dense` all-reduces whole embedding tables with the other gradients", examples=["dense"])

    @model_validator(mode="after")
    def _warmup(self) -> TrainConfig:
        if self.lr_schedule == "constant" and self.warmup_epochs is not None:
            raise ValueError("train.warmup_epochs: means something only with lr_schedule warmup or "
                             "warmup_cosine; remove it")
        if self.lr_schedule != "constant" and self.warmup_epochs is None:
            self.warmup_epochs = 1.0
        return self
