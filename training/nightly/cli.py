"""Operations commands: `ranker retrain` (the nightly job) and `ranker registry list|show|promote|rollback|canary|abort`.

The registry root and model name also come from RANKER_REGISTRY_ROOT and RANKER_MODEL_NAME, the
variables the server reads, so one ConfigMap configures both. Exit codes of `retrain`: 0 promoted
(with --canary: started as a canary), 3 rejected by a gate, 4 registry busy (locked, CURRENT moved
during the run, or another canary running), 2 any other error.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from service.contract.bundle import MANIFEST_FILE, BundleError, read_manifest
from service.registry import REPORT_MD, Registry, RegistryError, RegistryLocked
from training.cli_options import ModelOpt, RegistryOpt, fail, open_registry

registry_app = typer.Typer(help="List versions, show reports, promote, roll back, canary and abort.", no_args_is_help=True,
                           pretty_exceptions_enable=False)


def retrain_command(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="ranker spec YAML (the same file as `train`)")],
    registry: RegistryOpt,
    start: Annotated[str | None, typer.Option(help="window start, ISO time, inclusive (overrides data.start)")] = None,
    end: Annotated[str | None, typer.Option(help="window end, ISO time, exclusive (overrides data.end)")] = None,
    last_days: Annotated[int | None, typer.Option(
        min=1, help="window = the last N complete UTC days (instead of --start/--end); for schedulers")] = None,
    partition: Annotated[list[str] | None, typer.Option(
        help="Parquet file or partition directory to train on (repeatable; relative to data.path)")] = None,
    data: Annotated[str | None, typer.Option(help="train on this one dataset instead of the spec's data, split by "
                                             "the spec's rule (replaces pre-split files too)")] = None,
    train: Annotated[str | None, typer.Option(
        "--train", help="pre-split specs: train on these rows instead of data.train; the spec's valid and test "
                        "files stay the holdout")] = None,
    allow_holdout_overlap: Annotated[bool, typer.Option(
        help="gate even when the holdout may hold rows CURRENT trained on (refused by default; recorded in the "
             "gate report)")] = False,
    warm_start: Annotated[bool, typer.Option(help="start from CURRENT's checkpoint (rows mapped by vocabulary)")] = False,
    work_dir: Annotated[Path | None, typer.Option(help="bundle, logs and report of this run",
                                                  show_default="runs/retrain-<UTC time>")] = None,
    keep: Annotated[int, typer.Option(min=2, help="versions kept by retention")] = 5,
    publish_rejected: Annotated[bool, typer.Option(
        help="publish a rejected candidate as a non-CURRENT version with its report")] = True,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = False,
    weights: Annotated[Path | None, typer.Option(
        help="the weights.yaml that will serve: the NDCG and top-k overlap gates run per profile "
             "(default: the spec's eval.weights, else eval.score_weights as one profile)")] = None,
    nproc: Annotated[int, typer.Option(min=1, help="train in N processes on this machine (torchrun); process 0 "
                                       "exports, gates and publishes; the exit codes are the same")] = 1,
    canary: Annotated[float | None, typer.Option(
        help="a passing candidate is published without becoming CURRENT and serves this share of users "
             "(0 < share <= 1) as a canary; `ranker registry promote|abort` ends it")] = None,
    shadow: Annotated[bool, typer.Option(
        help="a passing candidate scores every request in the shadow (CURRENT's ranking served) instead")] = False,
) -> None:
    """Train on a data window, gate against CURRENT, publish; promote only if every gate passes."""
    from service.profiles import WeightsError
    from training.data import DataError
    from training.distributed.context import Dist
    from training.distributed.launch import relaunch_retrain, under_torchrun
    from training.nightly.retrain import HoldoutOverlap, RetrainOptions, last_days_window, retrain
    from training.nightly.warm_start import WarmStartError
    from training.spec import SpecError, load_spec

    if last_days is not None:
        if start or end:
            fail("give either --last-days or --start/--end, not both")
        start, end = last_days_window(last_days)
    work = work_dir or Path("runs") / f"retrain-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    if nproc > 1 and not under_torchrun():
        raise typer.Exit(code=relaunch_retrain(nproc, work, work_dir is None))
    if data and train:
        fail("give either --data (one dataset, split by the spec's rule) or --train (new training rows of a "
             "pre-split spec), not both")
    if canary is not None and not 0 < canary <= 1:
        fail(f"--canary: the share must be a number in (0, 1], not {canary}")
    dist = Dist.from_env()
    try:
        spec = load_spec(spec_path, data_path=data)
        if train is not None:
            spec = with_train_file(spec, train)
        reg = Registry(registry, spec.name, keep=keep)
        opts = RetrainOptions(work_dir=work, start=start, end=end, partitions=partition or [],
                              warm_start=warm_start, publish_rejected=publish_rejected, progress=progress,
                              weights=weights, allow_holdout_overlap=allow_holdout_overlap, canary=canary,
                              shadow=shadow)
        outcome = retrain(spec, reg, opts, dist)
    except HoldoutOverlap as e:
        fail(f"{e}. {overlap_advice(spec_path, data)}")
    except (SpecError, DataError, BundleError, RegistryError, WeightsError, WarmStartError) as e:
        fail(str(e))
    finally:
        dist.close()
    if not dist.is_leader:
        return
    typer.echo((work / REPORT_MD).read_text())
    where = f"version {outcome.version}" if outcome.version is not None else "nothing published"
    typer.echo(f"{outcome.decision}: {where}; report in {work}")
    raise typer.Exit(code=outcome.exit_code)


def with_train_file(spec, train: str):
    """The pre-split spec with data.train replaced by `train` (its valid and test files stay)."""
    from training.data import DataError

    if spec.data.train is None:
        raise DataError("--train replaces data.train of a spec with pre-split files; this spec names data.path "
                        "(one dataset): use --data, --start/--end or --partition")
    return spec.model_copy(update={"data": spec.data.model_copy(update={"train": str(Path(train).resolve())})})


def overlap_advice(spec_path: Path, data: str | None) -> str:
    """What to pass instead, for a retrain refused because its holdout may hold CURRENT's training rows."""
    import yaml

    raw = yaml.safe_load(spec_path.read_text()).get("data", {}) if spec_path.is_file() else {}
    pre_split = isinstance(raw, dict) and "train" in raw
    if data and pre_split:
        hint = ("--data replaced the spec's pre-split files with one dataset split by the spec's rule; to train "
                "on new rows and gate on the spec's own test file, pass --train NEW_ROWS instead, or leave --data out")
    elif pre_split:
        hint = "name a test file (data.test) that holds no training rows of CURRENT"
    else:
        hint = ("give the rows a timestamp (data.timestamp: the newest rows are the holdout), a split column "
                "(data.split_column), or pre-split files with a fixed test file")
    return f"To fix: {hint}; --allow-holdout-overlap gates anyway and says so in the gate report"


def version_row(reg: Registry, version: int, current: int | None, served: set[int]) -> dict:
    """What `list` shows for one version: when, data window end, decision and why."""
    from training.nightly.gate_report import failure_summary

    report = reg.report(version)
    if report and "gates" in report:
        base = report.get("compared_with")
        why = failure_summary(report, limit=2) + (f" vs v{base}" if base is not None else " (absolute floors)")
        created, until, decision = report["finished_at"], report["holdout"]["end"] or "", report["decision"]
    else:
        manifest = json.loads(reg.read_file(version, MANIFEST_FILE) or b"{}")
        why, decision = "published without gates (ranker train / publish)", "published"
        created, until = manifest.get("created_at", ""), manifest.get("data_window", {}).get("end") or ""
    return {"version": version, "current": version == current, "served": version in served,
            "decision": decision, "created": str(created)[:19], "window_end": str(until)[:19], "why": why}


@registry_app.command("list")
def list_versions(registry: RegistryOpt, model: ModelOpt = None,
                  as_json: Annotated[bool, typer.Option("--json", help="one JSON object per version")] = False) -> None:
    """Versions, which is CURRENT, and why each was or wasn't promoted."""
    try:
        reg = open_registry(registry, model)
        current, history, running = reg.current(), reg.history(), reg.canary()
        served = {h["version"] for h in history}
        rows = [version_row(reg, v, current, served) for v in reg.versions()]
        events = reg.events()
    except RegistryError as e:
        fail(str(e))
    for row in rows:
        row["canary"] = running.mode if running is not None and running.version == row["version"] else None
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    typer.echo(f"{reg.location}: CURRENT = {current}")
    if running is not None:
        typer.echo(f"{reg.location}: CANARY = {canary_text(running)}")
    typer.echo(f"{'':2}{'version':>7}  {'decision':<13} {'created (UTC)':<19}  {'data until':<19}  why")
    for r in rows:
        mark = "* " if r["current"] else "  "
        typer.echo(f"{mark}{r['version']:>7}  {r['decision']:<13} {r['created']:<19}  {r['window_end']:<19}  {r['why']}")
    for h in events[-5:]:
        if "event" in h:
            typer.echo(f"  history: {h['at'][:19]} {h['event']} {h['canary']} ({h['reason']})")
        else:
            typer.echo(f"  history: {h['at'][:19]} CURRENT -> {h['version']} ({h['reason']})")


def canary_text(record) -> str:
    """One line for a running canary record."""
    if record.mode == "shadow":
        return f"{record.version} (shadow: scores every request, CURRENT's ranking served; since {record.started_at[:19]})"
    return f"{record.version} (canary: {record.share:.4g} of users; salt {record.salt}; since {record.started_at[:19]})"


@registry_app.command("show")
def show(registry: RegistryOpt, version: Annotated[int | None, typer.Argument(help="default: CURRENT")] = None,
         model: ModelOpt = None) -> None:
    """Print a version's gate report (or its manifest summary when it has none)."""
    try:
        reg = open_registry(registry, model)
        version = version if version is not None else reg.current()
        if version is None:
            fail("the registry has no CURRENT version")
        text = reg.read_file(version, REPORT_MD)
        if text is None:
            manifest = read_manifest(reg.bundle_dir(version))
            text = (f"version {version}: no gate report (published without gates)\n"
                    f"created {manifest.created_at.isoformat()}, data window {manifest.data_window}\n").encode()
        running = reg.canary()
    except (RegistryError, BundleError) as e:
        fail(str(e))
    if running is not None and running.version == version:
        typer.echo(f"version {version} is the running CANARY: {canary_text(running)}")
    typer.echo(text.decode())


@registry_app.command("promote")
def promote(registry: RegistryOpt, version: Annotated[int, typer.Argument(help="version to make CURRENT")],
            model: ModelOpt = None,
            force: Annotated[bool, typer.Option(help="promote even a version the gates rejected")] = False,
            reason: Annotated[str, typer.Option(help="recorded in history.jsonl")] = "promoted by hand") -> None:
    """Point CURRENT at VERSION; every server follows within its poll interval."""
    try:
        reg = open_registry(registry, model)
        report = reg.report(version) if version in reg.versions() else None
        if report and report.get("decision") == "rejected" and not force:
            fail(f"version {version} was rejected by the gates ({report['failed']}); pass --force to promote it anyway")
        running = reg.canary()
        reg.promote(version, reason=reason + (" (forced over gate rejection)" if force and report else ""))
    except RegistryLocked as e:
        fail(str(e), code=4)
    except RegistryError as e:
        fail(str(e))
    ended = running is not None and running.version == version
    typer.echo(f"CURRENT = {version}" + (f" (the {running.mode} of version {version} ends: promoted)" if ended else ""))


@registry_app.command("canary")
def canary(registry: RegistryOpt, version: Annotated[int, typer.Argument(help="version to serve beside CURRENT")],
           share: Annotated[float, typer.Option(help="share of users (0 < share <= 1) the canary serves")] = 0.05,
           shadow: Annotated[bool, typer.Option(
               help="score every request with VERSION too, serve CURRENT's ranking, log both")] = False,
           model: ModelOpt = None,
           force: Annotated[bool, typer.Option(help="canary even a version the gates rejected")] = False,
           reason: Annotated[str, typer.Option(help="recorded in history.jsonl")] = "canary started by hand") -> None:
    """Serve VERSION to a stable share of users beside CURRENT (or in the shadow); every server follows within
    its poll interval. `promote VERSION` ends it as CURRENT, `abort` ends it."""
    try:
        reg = open_registry(registry, model)
        record = reg.start_canary(version, share, "shadow" if shadow else "canary", force=force, reason=reason)
        current = reg.current()
    except RegistryLocked as e:
        fail(str(e), code=4)
    except (RegistryError, ValueError) as e:
        fail(str(e))
    typer.echo(f"CANARY = {canary_text(record)}; CURRENT = {current}")


@registry_app.command("abort")
def abort(registry: RegistryOpt, model: ModelOpt = None,
          reason: Annotated[str, typer.Option(help="recorded in history.jsonl")] = "canary aborted by hand") -> None:
    """End the running canary or shadow; CURRENT serves every request again."""
    try:
        reg = open_registry(registry, model)
        ended = reg.abort_canary(reason=reason)
        current = reg.current()
    except RegistryLocked as e:
        fail(str(e), code=4)
    except RegistryError as e:
        fail(str(e))
    typer.echo(f"{ended.mode} of version {ended.version} aborted; CURRENT = {current} serves every request")


@registry_app.command("rollback")
def rollback(registry: RegistryOpt, model: ModelOpt = None) -> None:
    """Point CURRENT back at the newest older version that has served."""
    try:
        reg = open_registry(registry, model)
        before = reg.current()
        target = reg.rollback()
    except RegistryLocked as e:
        fail(str(e), code=4)
    except RegistryError as e:
        fail(str(e))
    typer.echo(f"CURRENT = {target} (was {before})")
