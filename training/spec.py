"""The ranker spec: one YAML file that maps a user's Parquet columns to features and tasks.

Every field has a default except the data path, the features and the tasks. Unknown keys are
errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Source = Literal["user", "context", "item"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataConfig(_Strict):
    path: str = Field(description="Parquet file, directory or glob")
    timestamp: str = Field("ts", description="event time column, used for the time split and windows")
    request_id: str = Field("request_id", description="groups the candidates of one ranking request")
    item_id: str = Field("item_id", description="the candidate's id column")
    start: str | None = Field(None, description="keep rows with timestamp >= start (ISO date/time)")
    end: str | None = Field(None, description="keep rows with timestamp < end (ISO date/time)")
    valid_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0, lt=0.5)


class CategoricalFeature(_Strict):
    name: str
    source: Source
    max_vocab: int = Field(100_000, ge=1, description="keep the most frequent values; the rest share OOV")
    min_count: int = Field(1, ge=1, description="values seen fewer times in training map to OOV")


class NumericFeature(_Strict):
    name: str
    source: Source
    transform: Literal["none", "log1p"] = "none"


class FeaturesConfig(_Strict):
    categorical: list[CategoricalFeature] = Field(min_length=1)
    numeric: list[NumericFeature] = Field(min_length=1)


class TaskConfig(_Strict):
    name: str
    type: Literal["binary", "regression"]
    group: Literal["engagement", "satisfaction"]
    column: str | None = Field(None, description="label column; defaults to the task name")
    label_transform: Literal["none", "log1p"] = "none"
    loss: Literal["bce", "mse", "huber"] | None = Field(None, description="bce for binary, mse by default")
    weight: float = Field(1.0, ge=0, description="fixed loss weight (loss_balancing: fixed)")

    @model_validator(mode="after")
    def _check(self) -> TaskConfig:
        if self.column is None:
            self.column = self.name
        if self.loss is None:
            self.loss = "bce" if self.type == "binary" else "mse"
        if (self.type == "binary") != (self.loss == "bce"):
            raise ValueError(f"task {self.name!r}: loss {self.loss!r} does not fit a {self.type} task")
        if self.type == "binary" and self.label_transform != "none":
            raise ValueError(f"task {self.name!r}: binary tasks take no label_transform")
        return self


class ModelConfig(_Strict):
    arch: Literal["mmoe", "omoe", "shared_bottom", "single_task"] = "mmoe"
    num_experts: int = Field(4, ge=1)
    expert_hidden: list[int] = Field(default_factory=lambda: [128, 64], min_length=1)
    tower_hidden: list[int] = Field(default_factory=lambda: [64])
    embedding_dim: int = Field(16, ge=1)
    expert_dropout: float = Field(0.1, ge=0, lt=1, description="gate-weight dropout, Zhao et al. 2019")
    dropout: float = Field(0.0, ge=0, lt=1, description="ordinary dropout inside MLPs")


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(1024, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    loss_balancing: Literal["fixed", "uncertainty", "gradnorm"] = "fixed"
    gradnorm_alpha: float = Field(1.5, ge=0)
    early_stopping_patience: int = Field(2, ge=0, description="epochs without validation improvement")
    seed: int = 0
    threads: int | None = Field(None, ge=1, description="torch intra-op threads; default all cores")
    parity_rows: int = Field(1000, ge=1, description="rows checked torch vs onnxruntime at export")


class EvalConfig(_Strict):
    ndcg_k: int = Field(10, ge=1)
    score_weights: dict[str, float] | None = Field(
        None, description="task -> weight of the ranking score used for NDCG; default 1.0 for binary tasks"
    )
    gain_weights: dict[str, float] | None = Field(
        None, description="label -> weight of the NDCG gain (null labels count 0); default 1.0 for binary"
    )


class GatesConfig(_Strict):
    """Promotion gates of `ranker retrain` (training/gates.py): a candidate must pass all of them.

    Comparisons are against the CURRENT model scored on the same holdout rows; the first model of
    a registry is held to the absolute floors instead.
    """

    parity_rows: int = Field(2000, ge=1, description="holdout rows re-scored torch vs onnxruntime")
    auc_tolerance: float = Field(0.01, ge=0, description="allowed AUC drop vs CURRENT (absolute)")
    rmse_tolerance: float = Field(0.05, ge=0, description="allowed RMSE rise vs CURRENT (relative, 0.05 = 5%)")
    min_auc: float = Field(0.55, ge=0, le=1, description="first model: AUC floor of every binary task")
    max_rmse_ratio: float = Field(1.0, gt=0, description="first model: RMSE / RMSE of predicting the mean")
    max_mean_shift: float = Field(0.25, ge=0, description="|mean shift| of a head vs CURRENT, in label std")
    max_quantile_shift: float = Field(0.5, ge=0, description="largest p05..p95 shift of a head vs CURRENT, in label std")
    topk: int = Field(5, ge=1, description="k of the top-k overlap with CURRENT")
    min_topk_overlap: float = Field(0.5, ge=0, le=1, description="mean |top-k(candidate) & top-k(CURRENT)| / k")
    topk_requests: int = Field(500, ge=1, description="holdout requests sampled for the overlap")


class RankerSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataConfig
    features: FeaturesConfig
    tasks: list[TaskConfig] = Field(min_length=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> RankerSpec:
        features = [f.name for f in (*self.features.categorical, *self.features.numeric)]
        _no_repeats("feature", features)
        tasks = [t.name for t in self.tasks]
        _no_repeats("task", tasks)
        if self.train.loss_balancing == "gradnorm" and self.model.arch == "single_task":
            raise ValueError("train.loss_balancing: gradnorm needs a shared layer, and model.arch "
                             "single_task has none; use fixed or uncertainty")
        for field, weights in (("eval.score_weights", self.eval.score_weights),
                               ("eval.gain_weights", self.eval.gain_weights)):
            unknown = sorted(set(weights or {}) - set(tasks))
            if unknown:
                raise ValueError(f"{field}: unknown task(s) {unknown}; tasks are {tasks}")
        return self

    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def score_weights(self) -> dict[str, float]:
        return self.eval.score_weights or {t.name: 1.0 for t in self.tasks if t.type == "binary"}

    def gain_weights(self) -> dict[str, float]:
        return self.eval.gain_weights or {t.name: 1.0 for t in self.tasks if t.type == "binary"}


def _no_repeats(what: str, names: list[str]) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} names must be unique, repeated: {repeated}")


class SpecError(ValueError):
    """A spec file that cannot be used; the message names the file and the key."""


def load_spec(path: str | Path, data_path: str | None = None) -> RankerSpec:
    """Read and validate a spec. A relative data.path is resolved against the spec's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise SpecError(f"{path}: no such spec file") from e
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    if data_path is not None:
        raw.setdefault("data", {})["path"] = data_path
    try:
        spec = RankerSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(f"{path}: {_format_errors(e)}") from e
    data_file = Path(spec.data.path)
    if not data_file.is_absolute() and data_path is None:
        spec.data.path = str((path.parent / data_file).resolve())
    return spec


def _format_errors(e: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors()
    )
