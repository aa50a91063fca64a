"""Score weights: parse weights.yaml, validate it against a model's tasks, combine the task heads.

    score = sum over tasks t of  w_t * f_t(head_t)

with f_t one of
    identity   x
    log1p      log(1 + max(x, 0))                         (heavy-tailed heads such as watch time)
    log        log(max(x, LOG_EPS))                       (binary heads only: probabilities)
    zscore     (x - mean_t) / std_t                       (mean/std: the manifest's score_stats)
    minmax     (x - min_t) / (max_t - min_t)              (min/max: the manifest's score_stats)

The normalizations put heads of different units (probabilities, seconds, stars) on one scale, so
weights mean what they say. `log` turns a sum into a product: w1 log p1 + w2 log p2 = log(p1^w1 p2^w2),
so {watch: log, like: log} ranks by P(watch) * P(like | watch), and weights act as exponents. It is
defined on probabilities only, so a profile giving it to a head that is not binary is refused.
weights.yaml:

    default_profile: default          # optional; "default" when omitted
    profiles:
      default:
        click: 1.0                    # shorthand for {weight: 1.0, transform: identity}
        watch_time: {weight: 0.5, transform: zscore}

Validation is in two steps: the file on its own (`parse_weights`: weights finite and >= 0, known
transforms, a default profile that exists) and against a model (`compile_weights`: every task
exists, the normalizations have statistics and `log` is given to binary heads only). Errors name the offending key.

An optional `experiments` section splits the traffic of requests that name no profile between
profiles by a stable hash of a user key (service/experiments.py). Everything that ranks offline
(training/profiles: replay, diff, tune; the retrain gates) combines heads with `CompiledProfile`
too, so an offline number describes what this code serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from service.contract.bundle import TaskInfo
from service.contract.files import sha256_bytes
from service.experiments import CONTROL_ARM, Experiments, assign_arm

Transform = Literal["identity", "log1p", "log", "zscore", "minmax"]
NORMALIZATIONS = ("zscore", "minmax")
BINARY_ONLY = ("log",)  # defined on probabilities in [0, 1]: a regression or ranking score is unbounded
# log's floor: a calibrated head can be exactly 0 (isotonic), and log(0) = -inf would tie every such row
# at the bottom and poison sums with inf - inf. log(1e-6) = -13.8 still ranks it below any real probability.
LOG_EPS = 1e-6


class WeightsError(ValueError):
    """A weights file (or profile) that cannot be used; the message names the key."""


class TaskWeight(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    transform: Transform = "identity"

    @field_validator("weight", mode="before")
    @classmethod
    def _not_bool(cls, value: object) -> object:
        if isinstance(value, bool):  # `click: yes` is a typo, not a weight of 1
            raise ValueError("must be a number, not a boolean")
        return value


class Profile(RootModel[dict[str, TaskWeight]]):
    """One named way to combine the heads: task name -> weight and transform."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, raw: object) -> object:
        # A bare value is a weight with the identity transform. (YAML 1.1 reads `1e-3` as a string;
        # the float validation of `weight` converts it, and names the key if it is not a number.)
        if not isinstance(raw, Mapping):
            raise ValueError("a profile must be a mapping of task name to a weight or {weight, transform}")
        return {k: (v if isinstance(v, Mapping) else {"weight": v}) for k, v in raw.items()}

    @model_validator(mode="after")
    def _some_weight(self) -> Profile:
        if not any(t.weight > 0 for t in self.root.values()):
            raise ValueError("a profile needs at least one task with a weight above 0")
        return self


class WeightsFile(BaseModel):
    """The parsed weights.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profiles: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")], Profile] = Field(min_length=1)
    # After `profiles` so that its validator can see them; validated even when left at the default.
    default_profile: str = Field("default", validate_default=True)

    @field_validator("default_profile")
    @classmethod
    def _default_exists(cls, name: str, info: ValidationInfo) -> str:
        profiles = info.data.get("profiles")
        if profiles is not None and name not in profiles:
            raise ValueError(f"{name!r} is not one of the profiles {sorted(profiles)}")
        return name

    # After `default_profile`: arms must be profiles other than the default one.
    experiments: Experiments | None = None

    @field_validator("experiments")
    @classmethod
    def _arms_exist(cls, experiments: Experiments | None, info: ValidationInfo) -> Experiments | None:
        profiles, default = info.data.get("profiles"), info.data.get("default_profile")
        if experiments is not None and profiles is not None and default is not None:
            experiments.check_profiles(profiles, default)
        return experiments


@dataclass(frozen=True)
class Weights:
    """An accepted weights file: its content, a generation number and the file's sha256."""

    file: WeightsFile
    generation: int
    sha256: str

    @property
    def profile_names(self) -> list[str]:
        return sorted(self.file.profiles)


def parse_weights(text: bytes | str, generation: int = 1, source: str = "weights") -> Weights:
    """Parse and validate a weights file on its own (without a model). Raises WeightsError."""
    data = text.encode() if isinstance(text, str) else text
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise WeightsError(f"{source}: not valid YAML: {e}") from e
    try:
        file = WeightsFile.model_validate(raw)
    except ValidationError as e:
        raise WeightsError(f"{source}: {format_errors(e)}") from e
    return Weights(file=file, generation=generation, sha256=sha256_bytes(data))


def format_errors(e: ValidationError) -> str:
    """'profiles.default.click.weight: Input should be ...': the key as written in the file."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg'].removeprefix('Value error, ')}"
                     for err in e.errors())


@dataclass(frozen=True)
class Term:
    """w * f(x) written as coef * g(x) + offset, g = identity, log1p or log (precomputed per model)."""

    task: str
    coef: float
    offset: float
    g: Literal["identity", "log1p", "log"] = "identity"

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(B,) head output -> (B,) float64 contribution to the score."""
        x = x.astype(np.float64)
        if self.g == "log1p":
            x = np.log1p(np.maximum(x, 0.0))
        elif self.g == "log":
            x = np.log(np.maximum(x, LOG_EPS))
        return self.coef * x + self.offset


@dataclass(frozen=True)
class CompiledProfile:
    name: str
    terms: tuple[Term, ...]

    def combine(self, heads: Mapping[str, np.ndarray]) -> np.ndarray:
        """{task: (B,) head output} -> (B,) float64 combined score."""
        score = np.zeros(len(next(iter(heads.values()))), dtype=np.float64)
        for term in self.terms:
            score += term.apply(heads[term.task])
        return score

    def explain(self, heads: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """`combine`, and each task's (B,) contribution w * f(head) (offset included).

        The score is summed from the same arrays in the same order as `combine`, so it is
        bit-identical to it, and the contributions add up to it.
        """
        parts = {term.task: term.apply(heads[term.task]) for term in self.terms}
        score = np.zeros(len(next(iter(heads.values()))), dtype=np.float64)
        for part in parts.values():
            score += part
        return score, parts


@dataclass(frozen=True)
class CompiledWeights:
    """Weights validated against one model: ready to score its heads."""

    weights: Weights
    profiles: dict[str, CompiledProfile]

    @property
    def generation(self) -> int:
        return self.weights.generation

    def profile(self, name: str | None) -> CompiledProfile | None:
        """The named profile (the default one for None); None when there is no such profile."""
        return self.profiles.get(self.weights.file.default_profile if name is None else name)

    def choose(self, name: str | None, user: Mapping[str, object]) -> tuple[CompiledProfile | None, str | None]:
        """The profile a request is scored with, and its experiment arm.

        A named profile bypasses the experiment (arm None). Otherwise the experiment, if any,
        assigns an arm by the user's key: an arm's profile, or CONTROL_ARM with the default profile.
        """
        experiments = self.weights.file.experiments
        if name is not None or experiments is None:
            return self.profile(name), None
        arm = assign_arm(experiments, user)
        return self.profile(None if arm in (None, CONTROL_ARM) else arm), arm


def compile_weights(weights: Weights, tasks: list[TaskInfo], auxiliary: Sequence[str] = ()) -> CompiledWeights:
    """Check every profile against the model's tasks and precompute the terms. Raises WeightsError.

    `auxiliary`: the model's `serve: false` heads (trained, not served), which a profile naming them is told
    about by name; the server passes none (its bundle's manifest has served tasks only).
    """
    by_name = {t.name: t for t in tasks}
    profiles = {}
    for name, profile in weights.file.profiles.items():
        terms = []
        for task_name, tw in profile.root.items():
            key = f"profiles.{name}.{task_name}"
            task = by_name.get(task_name)
            if task is None and task_name in auxiliary:
                raise WeightsError(f"{key}: task {task_name!r} is an auxiliary head (serve: false): it trains beside "
                                   f"the served heads but has no output to weight; the served tasks are "
                                   f"{sorted(by_name)}")
            if task is None:
                raise WeightsError(f"{key}: unknown task {task_name!r}; the model's tasks are {sorted(by_name)}")
            if tw.weight > 0:
                terms.append(_term(key, task, tw))
        profiles[name] = CompiledProfile(name=name, terms=tuple(terms))
    return CompiledWeights(weights=weights, profiles=profiles)


def accepts(task: TaskInfo, transform: str) -> bool:
    """Whether `transform` is defined on the task's head: `log` on binary (probability) heads only."""
    return transform not in BINARY_ONLY or task.type == "binary"


def _term(key: str, task: TaskInfo, tw: TaskWeight) -> Term:
    if not accepts(task, tw.transform):
        raise WeightsError(f"{key}.transform: {tw.transform} is for probabilities (binary heads), and task "
                           f"{task.name!r} is a {task.type} head; use identity, log1p, zscore or minmax")
    shift, scale = 0.0, 1.0
    if tw.transform in NORMALIZATIONS:
        stats = task.score_stats
        if stats is None:
            raise WeightsError(f"{key}.transform: {tw.transform} needs score_stats for task {task.name!r} "
                               "in the model's manifest, and it has none")
        shift, scale = (stats.mean, stats.std) if tw.transform == "zscore" else (stats.min, stats.max - stats.min)
        if not (np.isfinite(shift) and np.isfinite(scale) and scale > 0):
            raise WeightsError(f"{key}.transform: the manifest's score_stats for {task.name!r} give a scale of "
                               f"{scale}; {tw.transform} needs a finite scale above 0")
    coef = tw.weight / scale
    g = tw.transform if tw.transform in ("log1p", "log") else "identity"
    return Term(task=task.name, coef=coef, offset=-coef * shift, g=g)
