"""The profiles offline evaluation ranks by: the weights file that will serve, or `eval.score_weights`.

    eval_weights(spec, path)   the `--weights` file, else the spec's `eval.weights`, else the spec's
                               `eval.score_weights` as one profile named "score_weights" (identity
                               transforms: a plain weighted sum of the heads, as before profiles)
    profile_ndcg(...)          NDCG@k per profile with the spec's gain, ranked by the server's code
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.contract.bundle import ScoreStats, TaskInfo
from service.profiles import CompiledWeights, Weights, WeightsError, compile_weights, parse_weights
from training.evaluation import ranking as R
from training.spec import RankerSpec

SCORE_WEIGHTS_PROFILE = "score_weights"
_UNIT = ScoreStats(mean=0.0, std=1.0, min=0.0, max=1.0)  # placeholder statistics for a check of task names


def score_weights_file(spec: RankerSpec) -> Weights:
    """`eval.score_weights` as a weights file with one profile (identity transforms)."""
    import yaml

    profile = {t: {"weight": w} for t, w in spec.score_weights().items()}
    text = yaml.safe_dump({"default_profile": SCORE_WEIGHTS_PROFILE, "profiles": {SCORE_WEIGHTS_PROFILE: profile}})
    return parse_weights(text, source="eval.score_weights")


def eval_weights(spec: RankerSpec, path: Path | str | None = None) -> tuple[Weights, str]:
    """The weights offline metrics and the retrain gates rank by, and where they came from.

    Raises WeightsError (naming the file and key) for a file that the server would refuse.
    """
    source = path if path is not None else spec.eval.weights
    if source is None:
        return score_weights_file(spec), "eval.score_weights"
    try:
        data = Path(source).read_bytes()
    except OSError as e:
        raise WeightsError(f"{source}: cannot read the weights file: {e}") from e
    weights = parse_weights(data, source=str(source))
    # The tasks can be checked before any model exists (the score statistics only once one does).
    try:
        compile_weights(weights, [t.model_copy(update={"score_stats": _UNIT}) for t in spec_tasks(spec.served())],
                        spec.auxiliary_tasks())
    except WeightsError as e:
        raise WeightsError(f"{source}: {e}") from e
    return weights, str(source)


def spec_tasks(spec: RankerSpec) -> list[TaskInfo]:
    """The spec's tasks as the server sees them, without score statistics (enough for identity/log1p)."""
    return [TaskInfo(name=t.name, type=t.type, group=t.group, output=t.name, label_transform=t.label_transform)
            for t in spec.tasks]


def score_weights_profile(spec: RankerSpec):
    """The compiled `eval.score_weights` profile (CompiledProfile)."""
    return compile_weights(score_weights_file(spec), spec_tasks(spec)).profile(SCORE_WEIGHTS_PROFILE)


def gains(spec: RankerSpec, raw_labels: np.ndarray) -> np.ndarray:
    """(N,) the NDCG gain: the spec's gain weights over the labels (null counts 0). raw_labels: (N, T)."""
    names = spec.task_names()
    gain = np.zeros(len(raw_labels))
    for t, w in spec.gain_weights().items():
        gain += w * np.nan_to_num(raw_labels[:, names.index(t)])
    return gain


def heads_of(preds: np.ndarray, tasks: list[str]) -> dict[str, np.ndarray]:
    """(N, T) predictions -> {task: (N,)}."""
    return {t: preds[:, j] for j, t in enumerate(tasks)}


def profile_ndcg(compiled: CompiledWeights, heads: dict[str, np.ndarray], gain: np.ndarray, request: np.ndarray,
                 k: int) -> dict[str, float | None]:
    """Mean NDCG@k per profile over requests with a positive gain (grouped by request id value)."""
    req = R.Requests.of(request)
    out: dict[str, float | None] = {}
    for name in sorted(compiled.profiles):
        per = R.ndcg(req, compiled.profiles[name].combine(heads), gain, k)
        out[name] = float(np.nanmean(per)) if np.isfinite(per).any() else None
    return out


def served_labels(spec: RankerSpec, raw_labels: np.ndarray) -> np.ndarray:
    """(N, T_served): the raw labels (N, T) of the full spec's served tasks, in the order of `spec.served()`'s
    tasks and the bundle's outputs (no `serve: false` column)."""
    return raw_labels[:, spec.served_columns()]

