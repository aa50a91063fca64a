"""The ranker spec: one YAML file that maps a user's Parquet columns to features and tasks.

Every field has a default except the data path, the features and the tasks. Unknown keys are
errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from service.contract.feedback import BINARY_AGGREGATES, FeedbackConfig
from training.spec.data import SPLIT_NAMES, DataConfig
from training.spec.errors import format_errors
from training.spec.model import NEEDS_SHARING, ModelConfig, TrainConfig

Source = Literal["user", "context", "item"]
SOURCE_HELP = "where the server finds the value in a request: `user`, `context` or each candidate (`item`)"
ON_MISSING_HELP = ("what the server does when a request lacks the value (absent or null): `default` uses "
                   "the training default and counts it in `ranker_features_defaulted_total`; `error` "
                   "refuses the request with a 422 naming the field")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class CategoricalFeature(_Strict):
    """A string, integer or boolean column, embedded; unknown values share the out-of-vocabulary row."""

    name: str = Field(description="the column name, and the field name in requests", examples=["user_id"])
    source: Source = Field(description=SOURCE_HELP, examples=["user"])
    max_vocab: int = Field(100_000, ge=1, description="keep the most frequent values; the rest share OOV",
                           examples=[500_000])
    min_count: int = Field(1, ge=1, description="values seen fewer times in training map to OOV", examples=[2])
    on_missing: Literal["default", "error"] = Field("default", description=ON_MISSING_HELP, examples=["error"])


def is_pattern(name: str) -> bool:
    """A numeric feature name with glob characters stands for every matching column (training/data/columns.py)."""
    return any(c in name for c in "*?[")


class NumericFeature(_Strict):
    """A number, standardized with training statistics; serving clips it to the training range."""

    name: str = Field(description="the column name, and the field name in requests. A glob pattern (`*`, "
                      "`mfcc_*`) stands for every numeric column of the training data that it matches and no "
                      "other key of the spec uses, each with this entry's other keys; string columns it "
                      "matches are left out and listed when training starts", examples=["item_age_days", "*"])
    source: Source = Field(description=SOURCE_HELP, examples=["item"])
    transform: Literal["none", "log1p"] = Field(
        "none", description="applied before standardizing; `log1p` for counts, money and durations "
        "(negative values count as 0)", examples=["log1p"])
    on_missing: Literal["default", "error"] = Field(
        "default", description=ON_MISSING_HELP + ". The default is the training median", examples=["error"])
    exclude: list[str] = Field([], description="with a pattern `name`: columns it must not take",
                               examples=[["row_id", "hasSegments"]])

    @model_validator(mode="after")
    def _exclude_needs_a_pattern(self) -> NumericFeature:
        if self.exclude and not is_pattern(self.name):
            raise ValueError(f"exclude: only a pattern name (with *, ? or [) takes columns to exclude, not {self.name!r}")
        return self


class FeaturesConfig(_Strict):
    """The model's inputs: at least one numeric feature; categorical ones are optional (a table of numbers,
    e.g. learning-to-rank features, needs none)."""

    categorical: list[CategoricalFeature] = Field([], description="categorical features (embedded); none for a "
                                                  "table of numbers only",
                                                  examples=[[{"name": "user_id", "source": "user"}]])
    numeric: list[NumericFeature] = Field(description="numeric features (at least one)",
                                          examples=[[{"name": "price", "source": "item", "transform": "log1p"}]])

    @field_validator("numeric")
    @classmethod
    def _at_least_one(cls, value: list, info: ValidationInfo) -> list:
        if value:
            return value
        raise ValueError("the model needs at least one numeric feature; for a table of ids only, add a column "
                         "holding one value to the data and name it here, e.g. `{name: bias, source: context}`")


LOSSES = {"binary": ("bce",), "regression": ("mse", "huber"), "ranking": ("lambdarank", "listnet")}
LISTWISE = LOSSES["ranking"]
RANKING_HEAD = "rank"  # the name of the ranking head a spec with requests gets by default


class TaskConfig(_Strict):
    """One head of the model, trained on one label column (binary, regression) or listwise on the requests'
    NDCG gain (ranking). A null label is masked out of that task's loss."""

    name: str = Field(description="the head's name in bundles, responses and weights.yaml", examples=["click"])
    type: Literal["binary", "regression", "ranking"] = Field(
        description="`binary` (0/1 labels, outputs a probability), `regression` (outputs label units) or "
        "`ranking` (trained listwise over each request's candidates on the NDCG gain; outputs a score that only "
        "orders a request's candidates)", examples=["binary"])
    group: Literal["engagement", "satisfaction", "ranking"] | None = Field(
        None, description="what the label measures (`engagement` or `satisfaction`; required for binary and "
        "regression tasks); reports and score profiles group heads by it. Ranking tasks are in `ranking`",
        examples=["engagement"])
    column: str | None = Field(None, description="label column; defaults to the task name (not for ranking tasks: "
                               "their label is the gain)", examples=["clicked"])
    label_transform: Literal["none", "log1p"] = Field(
        "none", description="regression only: train on log1p(label) (heavy-tailed labels such as watch "
        "time); the head still outputs label units", examples=["log1p"])
    loss: Literal["bce", "mse", "huber", "lambdarank", "listnet"] | None = Field(
        None, description="`bce` for binary tasks; `mse` (default) or `huber` for regression; for ranking tasks "
        "`lambdarank` (default: pairwise logistic loss weighted by each pair's NDCG change, as LambdaMART) or "
        "`listnet` (softmax cross-entropy of the scores against the gains)", examples=["huber"])
    gain: dict[str, float] | None = Field(
        None, description="ranking tasks: task -> weight of its label in the gain the head learns to order by "
        "(null labels count 0); default: `eval.gain_weights`", examples=[{"click": 1.0, "like": 1.0}])
    missing_gain: Literal["zero", "skip"] = Field(
        "zero", description="ranking tasks: a row whose every gain label is null: `zero` (default) ranks it with "
        "gain 0, as NDCG@k and the LambdaMART baseline count it (e.g. a movie never watched has no like, and "
        "belongs below the liked ones); `skip` leaves it out of its list (a null that means the outcome was "
        "not recorded)", examples=["skip"])
    weight: float = Field(1.0, ge=0, description="fixed loss weight (loss_balancing: fixed), and the task's "
                          "weight in the validation loss that early stopping watches", examples=[0.5])
    serve: bool = Field(
        True, description="false: an auxiliary head. It trains with its own loss and label mask like any task "
        "(and shapes what the tasks share), but the bundle does not serve it: it is not an output of model.onnx "
        "nor a task of the manifest, weights profiles cannot name it, and no gain or score weight may read it. "
        "report.md lists it with its validation metric", examples=[False])
    lr_scale: float = Field(
        1.0, gt=0, description="multiplies train.lr for the parameters only this task's output depends on "
        "(its tower and head; its gate in MMoE, CGC and PLE; its own experts in CGC and PLE; its whole model in "
        "single_task); shared experts and embeddings keep train.lr. E.g. 0.3 slows a head that peaks epochs "
        "before the others", examples=[0.3])

    @model_validator(mode="after")
    def _check(self) -> TaskConfig:
        if self.type == "ranking":
            return self._check_ranking()
        if self.group is None or self.group == "ranking":
            raise ValueError(f"task {self.name!r}: a {self.type} task needs group: engagement or satisfaction")
        if self.gain is not None or self.missing_gain != "zero":
            raise ValueError(f"task {self.name!r}: gain and missing_gain are for ranking tasks")
        if self.column is None:
            self.column = self.name
        if self.loss is None:
            self.loss = LOSSES[self.type][0]
        if self.loss not in LOSSES[self.type]:
            raise ValueError(f"task {self.name!r}: loss {self.loss!r} does not fit a {self.type} task")
        if self.type == "binary" and self.label_transform != "none":
            raise ValueError(f"task {self.name!r}: binary tasks take no label_transform")
        return self

    def _check_ranking(self) -> TaskConfig:
        if self.column is not None or self.label_transform != "none":
            raise ValueError(f"task {self.name!r}: a ranking task learns the gain; it takes no column or "
                             "label_transform")
        if self.group not in (None, "ranking"):
            raise ValueError(f"task {self.name!r}: ranking tasks are in group ranking")
        self.group = "ranking"
        self.loss = self.loss or LOSSES["ranking"][0]
        if self.loss not in LOSSES["ranking"]:
            raise ValueError(f"task {self.name!r}: loss {self.loss!r} does not fit a ranking task; use "
                             f"{' or '.join(LOSSES['ranking'])}")
        return self

    @property
    def listwise(self) -> bool:
        return self.type == "ranking"


class EvalConfig(_Strict):
    """Offline ranking metrics: NDCG@k per request, per profile of the weights file that will serve."""

    ndcg_k: int = Field(10, ge=1, description="k of NDCG@k", examples=[5])
    weights: str | None = Field(
        None, description="the weights.yaml that will serve (relative to this spec); report.md's NDCG and the "
        "retrain gates' NDCG and top-k overlap run per profile of it", examples=["weights.yaml"])
    score_weights: dict[str, float] | None = Field(
        None, description="without `weights`: task -> weight of the one ranking profile, named 'score_weights' "
        "(identity transforms); default 1.0 for each binary task (each task when none is binary)",
        examples=[{"click": 1.0, "like": 0.5}])
    gain_weights: dict[str, float] | None = Field(
        None, description="task -> weight of its label in the NDCG gain (null labels count 0); default 1.0 "
        "for each binary task", examples=[{"click": 1.0, "like": 2.0}])
    baseline: Literal["auto", "gbdt", "none"] = Field(
        "auto", description="non-neural baselines measured beside the model in report.md and `ranker "
        "evaluate`: `gbdt` = one scikit-learn HistGradientBoosting model per task on the same encoded "
        "features and split, and with a data.request_id also LightGBM's LambdaMART (lambdarank) on the NDCG "
        "gain; `auto` = `gbdt` when the training split has fewer than 1,000,000 rows (the fits then take "
        "seconds to a minute), else none; `none` = no baseline", examples=["gbdt"])


class GatesConfig(_Strict):
    """Promotion gates of `ranker retrain` (training/nightly/gates.py): a candidate must pass all of them.

    Comparisons are against the CURRENT model scored on the same holdout rows; the first model of
    a registry is held to the absolute floors instead.
    """

    parity_rows: int = Field(2000, ge=1, description="holdout rows re-scored torch vs onnxruntime", examples=[5000])
    auc_tolerance: float = Field(0.01, ge=0, description="allowed AUC drop vs CURRENT (absolute)", examples=[0.005])
    rmse_tolerance: float = Field(0.05, ge=0, description="allowed RMSE rise vs CURRENT (relative, 0.05 = 5%)", examples=[0.02])
    min_auc: float = Field(0.55, ge=0, le=1, description="first model: AUC floor of every binary task", examples=[0.6])
    max_rmse_ratio: float = Field(1.0, gt=0, description="first model: RMSE / RMSE of predicting the mean", examples=[0.95])
    max_mean_shift: float = Field(0.25, ge=0, description="|mean shift| of a head vs CURRENT, in label std", examples=[0.5])
    max_quantile_shift: float = Field(0.5, ge=0, description="largest p05..p95 shift of a head vs CURRENT, in label std", examples=[1.0])
    topk: int = Field(5, ge=1, description="k of the top-k overlap with CURRENT", examples=[10])
    min_topk_overlap: float = Field(0.5, ge=0, le=1, description="mean |top-k(candidate) & top-k(CURRENT)| / k", examples=[0.3])
    topk_requests: int = Field(500, ge=1, description="holdout requests sampled for the overlap", examples=[1000])
    ndcg_tolerance: float = Field(0.02, ge=0, description="allowed NDCG@eval.ndcg_k drop vs CURRENT, per served "
                                  "profile", examples=[0.01])


class CalibrationConfig(_Strict):
    """Post-hoc calibration fitted on the validation split, stored in the manifest, applied by the server."""

    binary: Literal["none", "platt", "isotonic"] = Field(
        "none", description="binary heads with at least 1,000 observed validation labels: none, Platt scaling or "
        "isotonic regression", examples=["platt"])
    smearing: bool = Field(True, description="log1p regression heads: scale the graph's expm1 (a median) so the "
                           "served value estimates the mean", examples=[False])


class LookupEntity(_Strict):
    """Features the server looks up by one entity's id (`item_id` or `user_id`) when a request omits them."""

    features: list[str] = Field(min_length=1, description="features of this source the feature store fills "
                                "by id (a request's own value still wins)", examples=[["item_popularity"]])
    table: str | None = Field(None, description="training on id-only logs: a Parquet table (the key column "
                              "and these features) joined onto the logs by id", examples=["features/items.parquet"])
    timestamp: str | None = Field(
        None, description="the table's time column: the table is a feature history, and each impression gets "
        "the newest row at or before its own time (point in time), never a later one", examples=["valid_from"])


class LookupConfig(_Strict):
    """Which features a feature store fills, per entity."""

    item: LookupEntity | None = Field(None, description="item features, found by the candidate's `item_id`",
                                      examples=[{"features": ["item_popularity", "item_category"]}])
    user: LookupEntity | None = Field(None, description="user features, found by the user's `user_id`",
                                      examples=[{"features": ["user_activity"]}])

    def entities(self) -> dict[str, LookupEntity]:
        return {name: e for name, e in (("item", self.item), ("user", self.user)) if e is not None}


class RankerSpec(_Strict):
    """One YAML file: a model's name, its data, features and tasks, and how to train and gate it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the model's name in the registry "
                      "(letters, digits, `_`, `.`, `-`)", examples=["my_ranker"])
    data: DataConfig = Field(description="where the rows are and how they are split", examples=[{"path": "data/"}])
    features: FeaturesConfig = Field(description="the model's inputs", examples=[{
        "categorical": [{"name": "user_id", "source": "user"}], "numeric": [{"name": "price", "source": "item"}]}])
    tasks: list[TaskConfig] = Field(min_length=1, description="the model's heads, one per label",
                                    examples=[[{"name": "click", "type": "binary", "group": "engagement"}]])
    model: ModelConfig = Field(default_factory=ModelConfig, description="the network's shape",
                               examples=[{"arch": "mmoe", "num_experts": 4}])
    train: TrainConfig = Field(default_factory=TrainConfig, description="the optimizer and the training loop",
                               examples=[{"epochs": 10, "lr": 0.002}])
    eval: EvalConfig = Field(default_factory=EvalConfig, description="offline ranking metrics",
                             examples=[{"ndcg_k": 10}])
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig, description="post-hoc calibration of "
                                           "the heads", examples=[{"binary": "platt"}])
    gates: GatesConfig = Field(default_factory=GatesConfig, description="promotion gates of `ranker retrain`",
                               examples=[{"auc_tolerance": 0.01}])
    lookup: LookupConfig = Field(
        default_factory=LookupConfig, description="features the server looks up by id when a request "
        "leaves them out (the feature store), and the tables training joins onto id-only logs",
        examples=[{"item": {"features": ["price"]}}])
    feedback: FeedbackConfig | None = Field(
        None, description="events the server takes at `POST /v1/feedback` and the rule that turns them into each "
        "label task's label (`ranker logs join`); copied into the manifest. Unset: the server takes no feedback",
        examples=[{"window": "24h", "events": {"click": "flag"}, "labels": {"click": "any(click)"}}])

    @model_validator(mode="after")
    def _cross_checks(self) -> RankerSpec:
        features = [f.name for f in (*self.features.categorical, *self.features.numeric)]
        _no_repeats("feature", features)
        _no_repeats("task", [t.name for t in self.tasks])
        _served_tasks(self)
        _ranking_tasks(self)  # may add the default ranking head, which the checks below then see
        tasks = [t.name for t in self.tasks]
        if self.train.loss_balancing in NEEDS_SHARING and self.model.arch == "single_task":
            raise ValueError(f"train.loss_balancing: {self.train.loss_balancing} works on what the tasks "
                             "share, and model.arch single_task shares nothing; use fixed or uncertainty")
        metric = self.train.early_stopping_metric
        if metric not in ("loss", "ndcg", *tasks):
            raise ValueError(f"train.early_stopping_metric: {metric!r} is not loss, ndcg or a task {tasks}")
        _check_bias_tower(self)
        for field, weights in (("eval.score_weights", self.eval.score_weights),
                               ("eval.gain_weights", self.eval.gain_weights)):
            unknown = sorted(set(weights or {}) - set(tasks))
            if unknown:
                raise ValueError(f"{field}: unknown task(s) {unknown}; tasks are {tasks}")
        check_lookup(self)
        if self.feedback is not None:
            _check_feedback(self)
        return self

    def lookups(self) -> dict[str, list[str]]:
        """Entity -> looked-up features, as the manifest records them."""
        return {entity: list(e.features) for entity, e in self.lookup.entities().items()}

    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def auxiliary_tasks(self) -> list[str]:
        """The `serve: false` tasks: trained, never exported."""
        return [t.name for t in self.tasks if not t.serve]

    def served_columns(self) -> list[int]:
        """The served tasks' positions among spec.tasks (the model's raw outputs, the label columns)."""
        return [j for j, t in enumerate(self.tasks) if t.serve]

    def served(self) -> RankerSpec:
        """This spec as the bundle sees it: only the served tasks. Not validated again (a served spec is not
        a spec to train: it may lose the task early stopping or the bias tower watch)."""
        if all(t.serve for t in self.tasks):
            return self
        return self.model_copy(update={"tasks": [t for t in self.tasks if t.serve]})

    def score_weights(self) -> dict[str, float]:
        """eval.score_weights, else 1.0 on the ranking head, else 1.0 for each binary task (each task when none is)."""
        if self.eval.score_weights:
            return self.eval.score_weights
        if ranking := [t.name for t in self.tasks if t.listwise]:
            return {ranking[0]: 1.0}
        binary = [t.name for t in self.tasks if t.type == "binary" and t.serve]
        return {name: 1.0 for name in binary or [t.name for t in self.tasks if t.serve]}

    def pointwise_score_weights(self) -> dict[str, float]:
        """score_weights for a scorer without the ranking head (a pointwise baseline): the spec's, unless they
        name a ranking task; then 1.0 for each binary task (each label task when none is)."""
        weights = self.score_weights()
        if not any(t.listwise and t.name in weights for t in self.tasks):
            return weights
        binary = [t.name for t in self.tasks if t.type == "binary" and t.serve]
        return {name: 1.0 for name in binary or [t.name for t in self.label_tasks() if t.serve]}

    def gain_weights(self) -> dict[str, float]:
        """eval.gain_weights, else 1.0 for each served binary task (an auxiliary label is never in a gain)."""
        return self.eval.gain_weights or {t.name: 1.0 for t in self.tasks if t.type == "binary" and t.serve}

    def label_tasks(self) -> list[TaskConfig]:
        """The tasks that read a label column (binary and regression: every task but the ranking heads)."""
        return [t for t in self.tasks if not t.listwise]

    def task_gain(self, task: TaskConfig) -> dict[str, float]:
        """A ranking task's gain: task -> weight (its `gain`, else eval.gain_weights)."""
        return task.gain or self.gain_weights()

    def without_ranking(self) -> RankerSpec:
        """This spec with model.ranking_head: false and no ranking task (pointwise heads only)."""
        raw = self.model_dump()
        raw["tasks"] = [t for t in raw["tasks"] if t["type"] != "ranking"]
        raw["model"]["ranking_head"] = False
        return RankerSpec.model_validate(raw)


def _ranking_tasks(spec: RankerSpec) -> None:
    """Ranking tasks need requests and a gain over label tasks; a spec with requests and none gets the default
    ranking head unless model.ranking_head is false."""
    ranking = [t for t in spec.tasks if t.listwise]
    labelled = [t.name for t in spec.tasks if not t.listwise]
    if spec.model.ranking_head is False and ranking:
        raise ValueError(f"model.ranking_head: false, but tasks {[t.name for t in ranking]} are of type ranking")
    if (ranking or spec.model.ranking_head) and spec.data.request_id is None:
        raise ValueError("a ranking head learns to order each request's candidates and needs data.request_id "
                         "(rows with equal values are one request); set it, or model.ranking_head: false")
    if not labelled:
        raise ValueError("a ranking task learns a gain over the other tasks' labels: add a binary or regression task")
    if wrong := sorted(set(spec.eval.gain_weights or {}) - set(labelled)):
        raise ValueError(f"eval.gain_weights: {wrong} are not binary or regression tasks {labelled}")
    for t in ranking:
        if not spec.task_gain(t):
            raise ValueError(f"task {t.name!r}: a ranking task needs a gain: set its gain or eval.gain_weights "
                             "(the default, 1.0 per binary task, is empty without a binary task)")
        for task, w in spec.task_gain(t).items():
            if task not in labelled:
                raise ValueError(f"task {t.name!r}: gain {task!r} is not a binary or regression task {labelled}")
            if w < 0:
                raise ValueError(f"task {t.name!r}: gain weights must be >= 0, got {task}: {w}")
    # By default only where there is a gain to learn (a regression-only spec has none without eval.gain_weights).
    if not ranking and spec.model.ranking_head is not False and spec.data.request_id is not None \
            and spec.gain_weights():
        if RANKING_HEAD in labelled:
            raise ValueError(f"a task is named {RANKING_HEAD!r}, the name of the default ranking head: rename it, "
                             "declare a ranking task with another name, or set model.ranking_head: false")
        spec.tasks.append(TaskConfig(name=RANKING_HEAD, type="ranking"))


def _served_tasks(spec: RankerSpec) -> None:
    """At least one task is served, and nothing that ranks or measures a served ranking reads an auxiliary
    (`serve: false`) task: the bundle has no output for it, and `ranker evaluate` and the retrain gates
    measure NDCG from the bundle's tasks' labels."""
    aux = set(spec.auxiliary_tasks())
    if not aux:
        return
    if len(aux) == len(spec.tasks):
        raise ValueError(f"every task is serve: false ({sorted(aux)}): a bundle serves at least one task; set "
                         "serve: true on the task(s) to serve")
    named = [("eval.score_weights", spec.eval.score_weights), ("eval.gain_weights", spec.eval.gain_weights),
             *((f"task {t.name!r}: gain", t.gain) for t in spec.tasks)]
    for where, weights in named:
        if wrong := sorted(aux & set(weights or {})):
            raise ValueError(f"{where}: {wrong} are auxiliary tasks (serve: false); a gain or score weight reads "
                             "served tasks only (serve the task, or leave it out)")


def _check_bias_tower(spec: RankerSpec) -> None:
    cfg = spec.model.bias_tower
    if cfg is None:
        return
    binary = [t.name for t in spec.tasks if t.type == "binary"]
    wrong = [t for t in cfg.tasks if t not in binary]
    if wrong:
        raise ValueError(f"model.bias_tower.tasks: {wrong} are not binary tasks; binary tasks are {binary}")


def check_lookup(spec: RankerSpec) -> None:
    from service.contract.lookups import ENTITY_KEY

    sources = {f.name: f.source for f in (*spec.features.categorical, *spec.features.numeric)}
    patterns = [(f.name, f.source) for f in spec.features.numeric if is_pattern(f.name)]
    for entity, cfg in spec.lookup.entities().items():
        for name in cfg.features:
            # A name a numeric pattern of this source may match is checked again once the pattern is
            # expanded against the data's columns (training/data/columns.py).
            if sources.get(name) != entity and not any(
                    source == entity and fnmatchcase(name, pattern) for pattern, source in patterns):
                raise ValueError(f"lookup.{entity}.features: {name!r} is not a feature with source {entity}")
            if name == ENTITY_KEY[entity]:
                raise ValueError(f"lookup.{entity}.features: {name!r} is the lookup key; it comes from the request")
        _no_repeats(f"lookup.{entity}.features", cfg.features)
        if cfg.timestamp is not None and cfg.table is None:
            raise ValueError(f"lookup.{entity}.timestamp: needs lookup.{entity}.table")


def _no_repeats(what: str, names: list[str]) -> None:
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} names must be unique, repeated: {repeated}")


class SpecError(ValueError):
    """A spec file that cannot be used; the message names the file and the key."""


def load_spec(path: str | Path, data_path: str | None = None) -> RankerSpec:
    """Read and validate a spec. Relative data paths are resolved against the spec's folder.

    data_path replaces the spec's data (data.path, or data.train/valid/test) with one dataset,
    split as the spec says.
    """
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
        data = raw.setdefault("data", {})
        if isinstance(data, dict):
            for name in SPLIT_NAMES:
                data.pop(name, None)
            data["path"] = data_path
    try:
        spec = RankerSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(f"{path}: {format_errors(e, RankerSpec)}") from e
    for key, value in spec.data.sources().items():
        if not Path(value).is_absolute() and data_path is None:
            setattr(spec.data, key, str((path.parent / value).resolve()))
    for cfg in spec.lookup.entities().values():
        if cfg.table is not None and not Path(cfg.table).is_absolute():
            cfg.table = str((path.parent / cfg.table).resolve())
    if spec.eval.weights is not None and not Path(spec.eval.weights).is_absolute():
        spec.eval.weights = str((path.parent / spec.eval.weights).resolve())
    return spec


def _check_feedback(spec: RankerSpec) -> None:
    """Every label task's column has a rule (a rule for another column writes an extra column: a label for a
    later task, or a subset of the spec's tasks); a binary task's rule gives 0/1."""
    rules = {r.column: r for r in spec.feedback.rules()}
    missing = [t.column for t in spec.label_tasks() if t.column not in rules]
    if missing:
        raise ValueError(f"feedback.labels: no rule for label column(s) {missing}; every label task's column "
                         f"needs one, e.g. `{missing[0]}: any(EVENT)`")
    for task in spec.label_tasks():
        rule = rules[task.column]
        if task.type == "binary" and rule.aggregate not in BINARY_AGGREGATES:
            raise ValueError(f"feedback.labels.{task.column}: {rule.aggregate}() does not give a 0/1 label for "
                             f"binary task {task.name!r}; use one of {', '.join(BINARY_AGGREGATES)}")
