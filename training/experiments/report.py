"""An experiment's numbers from the joined log: per arm and task the rate or mean, NDCG@k of the served
lists, each arm against control, the sample-ratio check and a verdict (a JSON-ready dict).

The statistics are in stats.py; the served lists' NDCG is the weights tools' per-request NDCG
(training/evaluation/ranking.py) of the served order (position) with the spec's gain
(training/evaluation/served.py `gains`), so the report's NDCG is the one `ranker replay` reports.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from service.experiments import CONTROL_ARM
from training.evaluation import ranking as R
from training.evaluation.served import gains
from training.experiments import stats as S
from training.experiments.joined import CURRENT, ExperimentError, JoinedLog
from training.spec import RankerSpec


def default_control(log: JoinedLog, by: str) -> str:
    """control for --by arm; the version served as current (else the lowest) for model_version; current for roles."""
    if by == "arm":
        return CONTROL_ARM
    if by == "model_role":
        return CURRENT
    current = [v for v, roles in log.roles.items() if CURRENT in roles]
    pool = current if len(current) == 1 else list(log.roles)
    return min(pool, key=lambda v: int(v)) if pool else ""


def served_ndcg(log: JoinedLog, spec: RankerSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per request: (R,) NDCG@k of the served order by the logged labels (NaN where undefined), and (R,) the
    index of one of its rows."""
    raw = np.full((len(log.position), len(spec.tasks)), np.nan)
    for j, name in enumerate(spec.task_names()):
        if name in log.labels:
            raw[:, j] = log.labels[name]
    req = R.Requests.of(log.request)
    row = np.empty(len(req), dtype=np.int64)
    row[req.group] = np.arange(len(req.group))
    return R.ndcg(req, -log.position, gains(spec, raw), spec.eval.ndcg_k), row


def per_user(log: JoinedLog, spec: RankerSpec) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, int]]:
    """(G, K) per-(arm, user) sums, (G,) the arm of each, the column names, and request counts per arm.

    Columns: `<task>:sum`, `<task>:n` per label task, then `ndcg:mean` (the user's mean NDCG over
    requests with a defined NDCG, 0 without) and `ndcg:n` (1 when the user has one).
    """
    n_clusters = int(log.cluster.max(initial=-1)) + 1
    keys, group = np.unique(log.arm * n_clusters + log.cluster, return_inverse=True)
    group = group.reshape(-1)
    columns, parts = [], []
    for task, values in log.labels.items():
        sums, seen = S.user_sums(group, values)
        columns += [f"{task}:sum", f"{task}:n"]
        parts += [sums, seen]
    ndcg, row = served_ndcg(log, spec)
    defined = np.isfinite(ndcg)
    req_group = group[row]
    total = np.bincount(req_group[defined], weights=ndcg[defined], minlength=len(keys))
    count = np.bincount(req_group[defined], minlength=len(keys)).astype(np.float64)
    has = (count > 0).astype(np.float64)
    columns += ["ndcg:mean", "ndcg:n"]
    parts += [np.nan_to_num(S.ratio(total, count)), has]
    arm_of_group = keys // max(n_clusters, 1)
    requests = {log.arms[a]: int(np.unique(log.request[log.arm == a]).size) for a in range(len(log.arms))}
    return np.column_stack(parts) if parts else np.empty((len(keys), 0)), arm_of_group, columns, requests


def arm_statistics(rows: np.ndarray, col: dict[str, int], tasks: list[str], resamples: int,
                   rng: np.random.Generator) -> tuple[dict, dict[str, np.ndarray]]:
    """One arm's estimates from its (U, K) per-user sums, and each statistic's (B,) bootstrap draws."""
    total = rows.sum(axis=0)
    reps = S.replicates(rows, resamples, rng)
    entry: dict = {"users": int(len(rows)), "tasks": {}}
    draws = {}
    for stat in [*tasks, "ndcg"]:
        s, n = (col["ndcg:mean"], col["ndcg:n"]) if stat == "ndcg" else (col[f"{stat}:sum"], col[f"{stat}:n"])
        draws[stat] = S.ratio(reps[:, s], reps[:, n])
        estimate = S.percentile(float(total[s] / total[n]) if total[n] > 0 else None, draws[stat]).to_dict()
        if stat == "ndcg":
            entry["ndcg"] = {"users": int(total[n]), **estimate}
        else:
            entry["tasks"][stat] = {"observed": int(total[n]), **estimate}
    return entry, draws


def users_in_several_arms(log: JoinedLog) -> int:
    """Users seen in more than one arm (the arms are then not independent samples)."""
    n = int(log.cluster.max(initial=-1)) + 1
    if n == 0:
        return 0
    first = np.unique(log.arm * n + log.cluster, return_index=True)[1]  # one row per (arm, user)
    return int((np.bincount(log.cluster[first], minlength=n) > 1).sum())


def analyze(log: JoinedLog, spec: RankerSpec, by: str = "arm", control: str | None = None,
            expected: Mapping[str, float] | None = None, resamples: int = S.RESAMPLES, seed: int = 0,
            lower_better: tuple[str, ...] = ()) -> dict:
    """The report as a JSON-ready dict. Raises ExperimentError for an absent control arm or a bad share."""
    control = control if control is not None else default_control(log, by)
    if control not in log.arms:
        raise ExperimentError(f"control arm {control!r} is not in the log (--by {by}; arms found: {log.arms}); "
                              "pass --control NAME")
    if unknown := sorted(set(lower_better) - set(log.labels)):
        raise ExperimentError(f"--lower-better {unknown[0]!r}: not a label task of the spec {sorted(log.labels)}")
    matrix, arm_of_group, columns, requests = per_user(log, spec)
    col = {c: i for i, c in enumerate(columns)}
    kinds = {t.name: "rate" if t.type == "binary" else "mean" for t in spec.label_tasks()}
    tasks = list(log.labels)
    order = [control, *sorted(a for a in log.arms if a != control)]
    arms, draws = {}, {}
    for i, arm in enumerate(order):
        code = log.arms.index(arm)
        arms[arm], draws[arm] = arm_statistics(matrix[arm_of_group == code], col, tasks, resamples,
                                               np.random.default_rng([seed, i]))
        arms[arm] |= {"requests": requests[arm], "rows": int((log.arm == code).sum())}
        for task in tasks:
            arms[arm]["tasks"][task]["kind"] = kinds[task]

    def value(arm: str, stat: str) -> float | None:
        return (arms[arm]["ndcg"] if stat == "ndcg" else arms[arm]["tasks"][stat])["value"]

    comparisons = {arm: {stat: S.compare(value(arm, stat), draws[arm][stat], value(control, stat),
                                         draws[control][stat], higher_is_better=stat not in lower_better).to_dict()
                         for stat in [*tasks, "ndcg"]} for arm in order[1:]}
    warnings = []
    if shared := users_in_several_arms(log):
        warnings.append(f"{shared} users appear in more than one arm (an assignment that changed during the "
                        "window?): the arms are not independent samples, the intervals are too optimistic")
    srm = None
    if expected is not None:
        try:
            srm = S.sample_ratio({a: arms[a]["users"] for a in order}, dict(expected)).to_dict()
        except ValueError as e:
            raise ExperimentError(str(e)) from e
        if srm["mismatch"]:
            warnings.insert(0, f"SAMPLE RATIO MISMATCH: the users per arm do not match the configured shares "
                            f"(chi-square p = {srm['p_value']:.2e} < {S.SRM_ALPHA}); the assignment or the logging "
                            "is broken for some arm, and the differences below cannot be trusted")
    return {"by": by, "experiment": log.experiment, "control": control, "ndcg_k": spec.eval.ndcg_k,
            "resamples": resamples, "seed": seed, "confidence": S.CONFIDENCE, "lower_better": sorted(lower_better),
            "window": log.window, "counts": log.counts, "arms": arms, "comparisons": comparisons, "srm": srm,
            "warnings": warnings}
