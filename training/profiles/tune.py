"""`ranker tune`: a Pareto front of weight profiles between replay objectives.

    split     requests are split in two halves at random (seeded): `search` and `holdout`
    search    optuna's NSGA-II over each task's weight (0..1, step 0.01) and transform (`log` only for
              binary heads: a product of probabilities), maximizing
              every objective (replay metrics, e.g. ndcg@10:click and ndcg@10:like) on the search
              half; the current profiles are the first trials, so the front starts from them
    front     the non-dominated trials on the search half
    choose    for each current profile P and objective o: the front point with the most o among
              those no worse than P on every other objective (search half) -> profile `<o>_vs_<P>`
    holdout   the front, the current profiles and the chosen points re-measured on the other half,
              with bootstrap intervals; chosen points also as paired deltas against their P

Profiles are scored by compiling them with the server's parser and combining heads with its code.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np

from service.contract.bundle import TaskInfo
from service.profiles import CompiledWeights, WeightsFile, accepts
from training.profiles.logs import ScoredLog, weights_from_mapping
from training.profiles.replay import Metric, check_metrics
from training.profiles.stats import RESAMPLES, Estimate, estimate

TRANSFORMS = ("zscore", "minmax", "log1p", "identity", "log")
WEIGHT_STEP = 0.01


@dataclass
class Point:
    """One profile on the front (or a current profile): its definition and objective values."""

    name: str
    profile: dict[str, dict]  # task -> {weight, transform}; tasks with weight 0 left out
    search: list[float]  # objective means on the search half
    holdout: list[Estimate] = field(default_factory=list)
    based_on: str | None = None  # for chosen points: the current profile it must not fall below
    deltas: list[Estimate] = field(default_factory=list)  # holdout, paired: this minus `based_on`

    def to_dict(self, objectives: list[Metric]) -> dict:
        return {"name": self.name, "profile": self.profile, "based_on": self.based_on,
                "search": dict(zip([o.name for o in objectives], self.search, strict=True)),
                "holdout": {o.name: e.to_dict() for o, e in zip(objectives, self.holdout, strict=False)},
                "deltas": {o.name: e.to_dict() for o, e in zip(objectives, self.deltas, strict=False)}}


def split_requests(log: ScoredLog, seed: int) -> tuple[ScoredLog, ScoredLog]:
    """(search, holdout): two halves of the requests, drawn at random with `seed`."""
    n = len(log.requests)
    if n < 4:
        raise ValueError(f"the log has {n} requests; tuning needs at least 4 (two per half)")
    search = np.zeros(n, dtype=bool)
    search[np.random.default_rng(seed).permutation(n)[: n // 2]] = True
    return log.subset(search), log.subset(~search)


def objective_values(log: ScoredLog, weights: CompiledWeights, name: str, objectives: list[Metric]) -> list[float]:
    scores = log.scores(weights.profiles[name])
    return [float(np.nanmean(o.per_request(log, scores))) for o in objectives]


def _compile_one(profile: dict[str, dict], tasks: list[TaskInfo]) -> CompiledWeights:
    return weights_from_mapping({"p": profile}, "p", tasks)


def task_transforms(tasks: list[TaskInfo], transforms: tuple[str, ...]) -> dict[str, list[str]]:
    """Task -> the transforms the search may give it: those of `transforms` its head accepts (the server's
    rule: `log` for binary heads only). A task that accepts none is left out of the search (weight 0)."""
    choices = {t.name: [f for f in transforms if accepts(t, f)] for t in tasks}
    return {t: fs for t, fs in choices.items() if fs}


def search_front(log: ScoredLog, tasks: list[TaskInfo], objectives: list[Metric], trials: int, seed: int,
                 transforms: tuple[str, ...], start: list[dict[str, dict]]) -> list[Point]:
    """NSGA-II on `log`; returns the non-dominated profiles (search-half objective values)."""
    import optuna

    check_metrics(objectives, log)
    choices = task_transforms(tasks, transforms)
    optuna.logging.set_verbosity(logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=min(50, max(10, trials // 6)))
    study = optuna.create_study(directions=["maximize"] * len(objectives), sampler=sampler)
    for profile in start:
        study.enqueue_trial(_as_params(profile, choices), skip_if_exists=True)

    def run(trial: optuna.Trial) -> list[float]:
        profile = {}
        for t, fs in choices.items():
            w = trial.suggest_float(f"w.{t}", 0.0, 1.0, step=WEIGHT_STEP)
            f = trial.suggest_categorical(f"f.{t}", fs)
            if w > 0:
                profile[t] = {"weight": round(w, 2), "transform": f}
        if not profile:
            raise optuna.TrialPruned()  # every weight 0 is not a profile
        trial.set_user_attr("profile", profile)
        return objective_values(log, _compile_one(profile, tasks), "p", objectives)

    study.optimize(run, n_trials=trials)
    front = sorted(study.best_trials, key=lambda t: tuple(t.values))
    return [Point(f"front-{i}", t.user_attrs["profile"], list(t.values)) for i, t in enumerate(front)]


def _as_params(profile: dict[str, dict], choices: dict[str, list[str]]) -> dict:
    """A current profile as trial parameters (weights clipped to the search range; a transform the search
    does not offer the task becomes its first choice)."""
    params = {}
    for t, fs in choices.items():
        spec = profile.get(t)
        w = 0.0 if spec is None else min(1.0, round(float(spec["weight"]) / WEIGHT_STEP) * WEIGHT_STEP)
        f = fs[0] if spec is None or spec["transform"] not in fs else spec["transform"]
        params[f"w.{t}"], params[f"f.{t}"] = w, f
    return params


def current_points(log: ScoredLog, weights: CompiledWeights, objectives: list[Metric]) -> list[Point]:
    """The profiles of the current weights file, measured on `log`."""
    file = weights.weights.file
    return [Point(name, _profile_dict(file, name), objective_values(log, weights, name, objectives))
            for name in weights.profiles]


def _profile_dict(file: WeightsFile, name: str) -> dict[str, dict]:
    return {t: tw.model_dump() for t, tw in file.profiles[name].root.items() if tw.weight > 0}


def choose(front: list[Point], current: list[Point], objectives: list[Metric]) -> list[Point]:
    """Per current profile P and objective o: the front point maximizing o with no other objective below P's."""
    chosen: dict[str, Point] = {}
    for base in current:
        for i, o in enumerate(objectives):
            ok = [p for p in front if all(p.search[j] >= base.search[j] for j in range(len(objectives)) if j != i)]
            if not ok:
                continue
            best = max(ok, key=lambda p: p.search[i])
            if best.search[i] <= base.search[i]:
                continue  # no gain over P on o: P itself is the point
            if any(c.profile == best.profile for c in chosen.values()):
                continue  # already chosen under another name
            name = f"{slug(o.name)}_vs_{base.name}"[:64]
            chosen[name] = Point(name, best.profile, best.search, based_on=base.name)
    return list(chosen.values())


def slug(text: str) -> str:
    """'ndcg@10:click' -> 'ndcg10_click' (a valid profile name)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.replace("@", "")).strip("_")


def measure_holdout(log: ScoredLog, tasks: list[TaskInfo], points: list[Point], current: CompiledWeights,
                    objectives: list[Metric], resamples: int = RESAMPLES, seed: int = 0) -> None:
    """Fill each point's holdout estimates (and, for chosen points, paired deltas against `based_on`)."""
    for p in points:
        scores = log.scores(_compile_one(p.profile, tasks).profiles["p"])
        per = [o.per_request(log, scores) for o in objectives]
        p.holdout = [estimate(v, resamples, seed) for v in per]
        if p.based_on is not None:
            base_scores = log.scores(current.profiles[p.based_on])
            p.deltas = [estimate(v - o.per_request(log, base_scores), resamples, seed)
                        for v, o in zip(per, objectives, strict=True)]


def tuned_file(current: CompiledWeights, chosen: list[Point]) -> dict:
    """The current weights file (profiles, default, experiments) plus the chosen profiles."""
    file = current.weights.file
    out: dict = {"default_profile": file.default_profile,
                 "profiles": {n: _profile_dict(file, n) for n in file.profiles}}
    for p in chosen:
        out["profiles"][p.name] = p.profile
    if file.experiments is not None:
        out["experiments"] = file.experiments.model_dump()
    return out


@dataclass
class TuneResult:
    objectives: list[Metric]
    front: list[Point]
    current: list[Point]
    chosen: list[Point]
    requests: tuple[int, int]  # (search, holdout)
    trials: int

    def to_dict(self) -> dict:
        return {"objectives": [o.name for o in self.objectives], "trials": self.trials,
                "requests": {"search": self.requests[0], "holdout": self.requests[1]},
                "current": [p.to_dict(self.objectives) for p in self.current],
                "chosen": [p.to_dict(self.objectives) for p in self.chosen],
                "front": [p.to_dict(self.objectives) for p in self.front]}


def tune(log: ScoredLog, current: CompiledWeights, tasks: list[TaskInfo], objectives: list[Metric], trials: int,
         seed: int = 0, transforms: tuple[str, ...] = TRANSFORMS, resamples: int = RESAMPLES) -> TuneResult:
    """Search on one half of the requests, choose profiles, re-measure everything on the other half."""
    if len(objectives) < 2:
        raise ValueError("give at least two --objective: a front needs two things to trade off")
    search, holdout = split_requests(log, seed)
    now = current_points(search, current, objectives)
    front = search_front(search, tasks, objectives, trials, seed, transforms, [p.profile for p in now])
    chosen = choose(front, now, objectives)
    measure_holdout(holdout, tasks, front + now + chosen, current, objectives, resamples, seed)
    return TuneResult(objectives, front, now, chosen, (len(search.requests), len(holdout.requests)), trials)
