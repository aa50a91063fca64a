"""The nightly job: train on a data window, export, gate against CURRENT, publish, promote or not.

    retrain()      reads top to bottom: window -> CURRENT -> fit -> export -> gates -> publish
    exit codes     0 promoted (or, with `canary`, published and started as a canary), 3 rejected by a
                   gate, 4 registry busy (locked, CURRENT moved during the run, or another canary
                   running), 2 bad input or a failed step; CURRENT moves only on 0 without `canary`.

With `canary` (a share of users) a passing candidate is published without becoming CURRENT and
starts a canary (or a shadow) beside CURRENT: `ranker registry promote VERSION` or `abort` ends it.
The first model of a registry has nothing to run beside, so it is promoted as without `canary`.

A rejected candidate is still published, as a version that is not CURRENT, with its gate report
(unless publish_rejected is off), so on-call can see what was trained and why it was refused, and
can promote it by hand after review. A candidate whose export fails parity has no bundle: its report
stays in the work directory and the job exits 3.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import torch.nn as nn

from service.contract.bundle import BundleError, LoadedBundle, load_bundle
from service.contract.features import FeatureEncoders
from service.profiles import Weights
from service.registry import REPORT_JSON, REPORT_MD, Registry, RegistryConflict, RegistryError, RegistryLocked
from training import data as D
from training.bundle.calibration import calibrate_columns
from training.bundle.export import CHECKPOINT_FILE, ExportError, export_loaded
from training.data.lineage import data_lineage, lineage, overlap
from training.distributed.context import Dist
from training.evaluation.evaluate import holdout_scores
from training.evaluation.inference import export_heads, predict
from training.evaluation.served import eval_weights, served_labels
from training.fit.train import Trained, train
from training.modeling.args import ModelArgs
from training.nightly.gate_report import build_report, render_gate_report, write_gate_report
from training.nightly.gates import GateResult, Scored, check, parity_gate, run_gates
from training.nightly.warm_start import keep_binned, load_checkpoint, warm_start
from training.spec import RankerSpec
from training.streaming.prepare import choose_loading

logger = logging.getLogger(__name__)

EXIT_PROMOTED = 0
EXIT_ERROR = 2
EXIT_REJECTED = 3
EXIT_BUSY = 4


@dataclass
class RetrainOptions:
    """What varies between nights; everything else comes from the spec."""

    work_dir: Path
    start: str | None = None  # ISO time, inclusive
    end: str | None = None  # ISO time, exclusive
    partitions: list[str] = field(default_factory=list)  # Parquet files or partition directories
    warm_start: bool = False
    publish_rejected: bool = True
    progress: bool = False
    weights: Path | None = None  # the weights.yaml that will serve (default: the spec's eval.weights)
    allow_holdout_overlap: bool = False  # run even when the holdout may hold rows CURRENT trained on (reported)
    canary: float | None = None  # a passing candidate starts a canary of this share of users instead of promoting
    shadow: bool = False  # ... or a shadow (every request scored, CURRENT's ranking served)


@dataclass
class RetrainOutcome:
    decision: str  # promoted | canary | rejected | not published
    exit_code: int
    version: int | None
    report: dict
    report_dir: Path


@dataclass
class Current:
    """The serving model the candidate is compared with (absent for the first model)."""

    version: int | None
    bundle: LoadedBundle | None = None
    note: str = ""


def last_days_window(days: int, now: datetime | None = None) -> tuple[str, str]:
    """[today - days, today) in UTC as ISO dates: the last `days` complete days before `now`."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return (today - timedelta(days=days)).isoformat(), today.isoformat()


def apply_window(spec: RankerSpec, opts: RetrainOptions) -> RankerSpec:
    """The spec with this run's data window: --start/--end and/or explicit partition paths."""
    data = spec.data.model_copy(update={k: v for k, v in (("start", opts.start), ("end", opts.end)) if v})
    if opts.partitions:
        if data.path is None:
            raise D.DataError("--partition picks partitions of data.path; this spec names pre-split files")
        data.path = str(link_partitions(opts.partitions, Path(spec.data.path), opts.work_dir / "partitions"))
    return spec.model_copy(update={"data": data})


def link_partitions(partitions: list[str], data_root: Path, farm: Path) -> Path:
    """A directory of symlinks to the chosen partitions, read as one dataset (names kept for hive keys).

    A relative partition is looked up under the spec's data directory first, then the working directory.
    """
    farm.mkdir(parents=True, exist_ok=True)
    for old in farm.iterdir():
        old.unlink()
    for i, part in enumerate(partitions):
        path = data_root / part if (data_root / part).exists() else Path(part)
        if not path.exists():
            raise D.DataError(f"partition {part!r} not found (looked in {data_root} and {Path.cwd()})")
        name = path.name if not (farm / path.name).exists() else f"{i:03d}-{path.name}"
        (farm / name).symlink_to(path.resolve())
    return farm


def load_current(registry: Registry) -> Current:
    version = registry.current()
    if version is None:
        return Current(None, note="no CURRENT: first model, judged by absolute floors")
    try:
        return Current(version, load_bundle(registry.bundle_dir(version)))
    except (BundleError, RegistryError) as e:
        # A CURRENT that fails verification is no fair baseline. Storage and network errors are not
        # caught: they fail the job rather than silently weakening the gates.
        logger.exception("CURRENT version %s cannot be loaded", version)
        return Current(version, None, f"CURRENT v{version} cannot be loaded ({e}); judged by absolute floors")


class HoldoutOverlap(D.DataError):
    """The retrain's holdout may hold rows CURRENT trained on, so the gates would favour CURRENT."""


def holdout_overlap(spec: RankerSpec, current: Current, opts: RetrainOptions, trained: Trained | None = None) -> str | None:
    """Why this run's holdout may hold rows CURRENT trained on (training/data/lineage.py), or None.

    Before training (trained None) the files and split rules are compared; after it, a time split's ranges
    too. Raises HoldoutOverlap unless opts.allow_holdout_overlap, which logs it for the gate report instead.
    """
    before = current.bundle.manifest.data_window.get("lineage") if current.bundle is not None else None
    now = lineage(spec, choose_loading(spec)[0] == "stream") if trained is None else data_lineage(spec, trained.prepared)
    if (why := overlap(before, now)) is None:
        return None
    why = f"the holdout may hold rows CURRENT v{current.version} trained on: {why}"
    if not opts.allow_holdout_overlap:
        raise HoldoutOverlap(why)
    logger.warning("%s (--allow-holdout-overlap: the gates run anyway)", why)
    return why


def fit_candidate(spec: RankerSpec, current: Current, warm: bool, out_dir: Path,
                  progress: bool, dist: Dist | None = None) -> tuple[Trained, dict | None]:
    """train() as `ranker train` does; with warm, the model starts from CURRENT's checkpoint (every rank
    loads it; rank 0's start is broadcast anyway)."""
    checkpoint = current.bundle.path / CHECKPOINT_FILE if warm and current.bundle else None
    init = None
    if checkpoint is not None and checkpoint.is_file():
        state = load_checkpoint(checkpoint)
        spec, kept = keep_binned(spec, state, [f.name for f in current.bundle.manifest.features.numeric])
        if kept is not None:
            logger.info("warm start keeps CURRENT's ple_auto binned features %s", kept or "(none)")

        def init(model: nn.Module, args: ModelArgs, encoders: FeatureEncoders) -> dict:
            return {"from_version": current.version, **warm_start(model, args, encoders, state)}

    if spec.data.without_test:
        raise D.DataError("ranker retrain gates the candidate on the test split, and the spec has none: set "
                          "data.test_fraction > 0 or name a data.test file")
    trained = train(spec, out_dir=out_dir, progress=progress, init=init, eval_test=True, dist=dist)
    return trained, trained.init_summary


def gate_candidate(trained: Trained, candidate: LoadedBundle, current: Current, weights: Weights) -> list[GateResult]:
    """Score candidate and CURRENT on the candidate's holdout and run every gate (profiles of `weights`) on the
    served heads (an auxiliary, `serve: false`, head is not in the bundle: nothing to gate)."""
    spec, splits, e = trained.spec.served(), trained.prepared.splits, trained.prepared.holdout()
    tables = partial(splits.tables, splits.holdout_name())  # streamed splits are read again, a table at a time
    scores = holdout_scores(candidate, tables(), spec.task_names())
    cand = Scored(scores.served, spec.task_names(), candidate.manifest.tasks, scores.raw)
    rows = e.head(min(spec.gates.parity_rows, len(e)))
    torch_out = predict(export_heads(trained.model, trained.spec, trained.prepared.scalers, served=True), rows)
    parity = parity_gate(cand.preds[:len(rows)], calibrate_columns(candidate.manifest.tasks, torch_out))
    labels, request = served_labels(trained.spec, e.raw_labels), e.request
    base = None
    if current.bundle is not None:
        missing = [f.name for f in current.bundle.manifest.features.all() if f.name not in splits.column_names]
        if missing:
            return [parity, check("comparable", "model", None, "<=", 0.0,
                                  f"CURRENT reads column(s) {missing} that this spec does not; review and promote by hand")]
        tasks = current.bundle.manifest.task_names
        scores = holdout_scores(current.bundle, tables(), tasks)
        base = Scored(scores.served, tasks, current.bundle.manifest.tasks, scores.raw)
    return run_gates(spec, labels, request, cand, base, parity, weights)


def retrain(spec: RankerSpec, registry: Registry, opts: RetrainOptions, dist: Dist | None = None) -> RetrainOutcome:
    """One nightly run; never moves CURRENT unless every gate passed. Under torchrun (`dist`) every rank
    trains; rank 0 alone exports, gates and publishes (the others return "trained", exit code 0)."""
    dist = dist or Dist()
    started = datetime.now(UTC)
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    spec = apply_window(spec, opts)
    weights, weights_source = eval_weights(spec, opts.weights)  # a bad file stops the job before training
    current = load_current(registry)
    leak = holdout_overlap(spec, current, opts)  # refused before training when the files and rules say so
    trained, warm = fit_candidate(spec, current, opts.warm_start, opts.work_dir, opts.progress, dist)
    if not dist.is_leader:
        return RetrainOutcome("trained", EXIT_PROMOTED, None, {}, opts.work_dir)
    leak = holdout_overlap(spec, current, opts, trained) or leak  # a time split's ranges, now known
    context = {"started_at": started, "spec": spec, "opts": opts, "current": current, "warm_start": warm,
               "weights": {"source": weights_source, "sha256": weights.sha256, "profiles": weights.profile_names},
               "holdout_overlap": leak}
    bundle_dir = opts.work_dir / "bundle"
    try:
        candidate = export_loaded(trained, bundle_dir)
    except ExportError as e:
        results = [check("parity", "model", None, "<=", 1.0, f"export refused the graph: {e}")]
        report = build_report(results=results, trained=trained, version=None, **context)
        return finish(report, EXIT_REJECTED, None, opts.work_dir)
    context["test_metrics"] = candidate.manifest.metrics.get("test")  # measured on the bundle, as `evaluate` does
    results = gate_candidate(trained, candidate, current, weights)
    promote = all(r.passed for r in results)
    canary = canary_plan(opts, current) if promote else None
    if canary is not None:
        context["canary"] = canary
    if not promote and not opts.publish_rejected:
        report = build_report(results=results, trained=trained, version=None, **context)
        return finish(report, EXIT_REJECTED, None, opts.work_dir)

    def report_files(version: int) -> dict[str, bytes]:
        report = build_report(results=results, trained=trained, version=version, **context)
        return {REPORT_JSON: json.dumps(report, indent=2).encode(), REPORT_MD: render_gate_report(report).encode()}

    reason = "promoted by gates" if promote else "rejected by gates"
    version = None
    try:
        if canary is not None:
            registry.check_canary_slot()  # before publishing: another canary running is a busy registry
        version = registry.publish(bundle_dir, make_current=promote and canary is None,
                                   expect_current=current.version if promote else "any",
                                   reason="canary by gates" if canary is not None else reason,
                                   extra_files=report_files)
        if canary is not None:
            registry.start_canary(version, canary["share"], canary["mode"], reason="passed the gates (ranker retrain)")
    except (RegistryLocked, RegistryConflict, RegistryError) as e:
        if not isinstance(e, RegistryLocked | RegistryConflict) and canary is None:
            raise
        # version is set when the canary could not start after the publish (another one began meanwhile)
        report = build_report(results=results, trained=trained, version=version, not_published=str(e), **context)
        return finish(report, EXIT_BUSY, version, opts.work_dir)
    report = build_report(results=results, trained=trained, version=version, **context)
    return finish(report, EXIT_PROMOTED if promote else EXIT_REJECTED, version, opts.work_dir)


def canary_plan(opts: RetrainOptions, current: Current) -> dict | None:
    """{share, mode} of the canary a passing candidate starts, or None (promote): none asked, or no CURRENT."""
    if opts.canary is None and not opts.shadow:
        return None
    if current.version is None:
        logger.warning("no CURRENT to run a canary beside: the first model is promoted")
        return None
    return {"share": opts.canary if opts.canary is not None else 1.0, "mode": "shadow" if opts.shadow else "canary"}


def finish(report: dict, code: int, version: int | None, work_dir: Path) -> RetrainOutcome:
    report["exit_code"] = code  # what `ranker retrain --nproc N` exits with (torchrun's own code is 0 or 1)
    write_gate_report(work_dir, report)
    return RetrainOutcome(report["decision"], code, version, report, work_dir)
