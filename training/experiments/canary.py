"""The canary check: is the running canary worse than CURRENT on what users did with its rankings?

    registry CANARY (version, share, started_at) + the joined log since started_at
      -> the experiment report by model_role (training/experiments/report.py: bootstrap by user)
      -> a verdict: too-early | mismatch | worse | ok  -> CANARY_CHECK in the registry (+ abort if asked)

The servers read CANARY_CHECK on their registry poll and export `ranker_canary_check_failing`, which
the RankerCanaryWorse alert watches (deploy/monitoring/rules.yml): a canary is judged offline, where
the outcomes are (the feedback joined to the impressions), and alerted on online.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from service.registry import Registry
from service.registry.canary import CanaryCheck
from training.experiments.joined import ExperimentError, read_joined
from training.experiments.report import analyze
from training.experiments.stats import RESAMPLES
from training.spec import RankerSpec

CANARY, CURRENT = "canary", "current"
MIN_USERS = 200  # per role, before any verdict but too-early


def check_canary(registry: Registry, joined: str | Path, spec: RankerSpec, guard: Sequence[str] = (),
                 min_users: int = MIN_USERS, resamples: int = RESAMPLES, seed: int = 0,
                 lower_better: tuple[str, ...] = ()) -> tuple[CanaryCheck, dict | None] | None:
    """(the verdict, the report it rests on: None when the canary has no rows yet); None when no canary
    runs (a shadow serves nobody: nothing to compare either).

    guard: the tasks (and "ndcg") a canary must not be worse on; default every label task.
    Raises ExperimentError when a guarded task is unknown."""
    record = registry.canary()
    if record is None or record.mode != CANARY:
        return None
    tasks = list(guard) or [t.name for t in spec.label_tasks()]
    known = {t.name for t in spec.label_tasks()} | {"ndcg"}
    if unknown := [t for t in tasks if t not in known]:
        raise ExperimentError(f"--guard {unknown[0]!r}: not a label task of the spec (nor ndcg): {sorted(known)}")
    log = read_joined(joined, spec, "model_role", start=record.started_at)
    at = datetime.now(UTC).isoformat()
    if CANARY not in log.arms or CURRENT not in log.arms:
        users = {arm: 0 for arm in (CURRENT, CANARY)}
        return CanaryCheck(record.version, "too-early", [], users, at), None
    report = analyze(log, spec, "model_role", CURRENT, {CURRENT: 1 - record.share, CANARY: record.share},
                     resamples, seed, lower_better)
    users = {arm: report["arms"][arm]["users"] for arm in (CURRENT, CANARY)}
    compared = report["comparisons"][CANARY]
    worse = [t for t in tasks if compared[t]["verdict"] == "worse"]
    verdict = ("too-early" if min(users.values()) < min_users else "mismatch" if report["srm"]["mismatch"]
               else "worse" if worse else "ok")
    return CanaryCheck(record.version, verdict, worse if verdict == "worse" else [], users, at), report
