"""`ranker experiment report`: arms of a weights experiment, or model versions, compared on the joined log;
`ranker experiment canary-check`: the running canary against CURRENT, recorded in the registry.

Exit codes: 0 the report was written (whatever it says, a sample-ratio mismatch included: it is a
warning in the report), or the canary check found nothing wrong (ok, too early to say, or no canary
running: an hourly CronJob stays green between canaries); 3 the
canary check failed (worse on a guarded task, or a sample-ratio mismatch); 4 the registry is locked
(an abort could not be made); 2 bad input (a missing column, an absent control arm, a bad option), named.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from service.experiments import CONTROL_ARM
from service.profiles import WeightsError, parse_weights
from service.registry import RegistryError, RegistryLocked
from training.cli_options import ModelOpt, RegistryOpt, fail, open_registry
from training.experiments.joined import BY, ExperimentError
from training.experiments.stats import RESAMPLES
from training.spec import SpecError, load_spec

experiment_app = typer.Typer(help="Read experiments (weights arms, model canaries) from the joined log.",
                             no_args_is_help=True, pretty_exceptions_enable=False)

ERRORS = (ExperimentError, SpecError, WeightsError, OSError)
CHECK_FAILED = 3


def parse_expected(text: str) -> dict[str, float]:
    """'control=0.9,tuned=0.1' -> {arm: share}. Raises ExperimentError naming the bad part."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        arm, sep, share = part.partition("=")
        try:
            value = float(share)
        except ValueError:
            value = -1.0
        if not sep or not arm or not 0 <= value <= 1:
            raise ExperimentError(f"--expected {part!r}: write ARM=SHARE with a share in [0, 1], "
                                  "e.g. --expected control=0.9,tuned=0.1")
        out[arm.strip()] = value
    if not out:
        raise ExperimentError("--expected: no ARM=SHARE given")
    return out


def weights_shares(path: Path, experiment: str | None) -> dict[str, float]:
    """The configured shares of weights.yaml's experiment: its arms, and control = 1 - their sum."""
    experiments = parse_weights(Path(path).read_bytes(), source=str(path)).file.experiments
    if experiments is None:
        raise ExperimentError(f"--weights {path}: the file has no `experiments` section (no shares to check)")
    if experiment is not None and experiments.name != experiment:
        raise ExperimentError(f"--weights {path}: its experiment is {experiments.name!r}, the log's is "
                              f"{experiment!r}")
    return {CONTROL_ARM: max(0.0, 1.0 - sum(experiments.arms.values())), **experiments.arms}


@experiment_app.command("report")
def report_command(
    joined: Annotated[Path, typer.Argument(metavar="JOINED", help="the joined log (`ranker logs join`): a Parquet "
                                           "file or a directory (hive partitions date=YYYY-MM-DD/)")],
    spec_path: Annotated[Path, typer.Option("--spec", help="ranker spec: the label tasks, their columns, the "
                                            "NDCG gain and k, data.request_id")],
    by: Annotated[str, typer.Option(help=f"what the arms are: {' | '.join(BY)}")] = "arm",
    control: Annotated[str | None, typer.Option(help="the control arm (default: 'control' for --by arm; the "
                                                "version served as current, else the lowest, for model_version; "
                                                "'current' for model_role)")] = None,
    experiment: Annotated[str | None, typer.Option(help="--by arm: the experiment to read when the log holds "
                                                   "several")] = None,
    weights: Annotated[Path | None, typer.Option(help="weights.yaml whose `experiments.arms` are the configured "
                                                 "shares (control = 1 - their sum) for the sample-ratio check")] = None,
    expected: Annotated[str | None, typer.Option(help="configured shares instead: ARM=SHARE,... (e.g. model "
                                                 "versions: 3=0.95,4=0.05)")] = None,
    out: Annotated[Path, typer.Option(help="writes report.md, report.json and report.png here")] = Path(
        "runs/experiment-report"),
    bootstrap: Annotated[int, typer.Option(min=100, help="bootstrap resamples (users drawn with replacement)")] = RESAMPLES,
    seed: Annotated[int, typer.Option(help="seed of the bootstrap")] = 0,
    lower_better: Annotated[list[str] | None, typer.Option("--lower-better", help="TASK whose lower values are "
                                                           "better (repeatable)")] = None,
    start: Annotated[str | None, typer.Option(help="only rows served at or after this ISO time (naive = UTC)")] = None,
    end: Annotated[str | None, typer.Option(help="only rows served before this ISO time (naive = UTC)")] = None,
) -> None:
    """Per arm and task: the rate or mean with a 95 % interval (bootstrap by user), the difference to control,
    NDCG@k of the served lists, a sample-ratio check and a verdict."""
    from training.experiments.joined import read_joined
    from training.experiments.render import markdown, write
    from training.experiments.report import analyze

    if weights is not None and expected is not None:
        fail("--weights and --expected both give the shares: pass one")
    try:
        spec = load_spec(spec_path)
        log = read_joined(joined, spec, by, experiment, start, end)
        if weights is not None and by != "arm":
            fail("--weights gives the shares of weights arms (--by arm); for model versions use --expected")
        shares = weights_shares(weights, log.experiment) if weights is not None else \
            parse_expected(expected) if expected is not None else None
        report = analyze(log, spec, by, control, shares, bootstrap, seed, tuple(lower_better or ()))
        paths = write(report, out)
    except ERRORS as e:
        fail(str(e))
    typer.echo(markdown(report))
    for warning in report["warnings"]:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"written: {', '.join(str(p) for p in paths.values())}")


@experiment_app.command("canary-check")
def canary_check_command(
    joined: Annotated[Path, typer.Argument(metavar="JOINED", help="the joined log (`ranker logs join`) covering the "
                                           "canary's time: a Parquet file or a directory")],
    spec_path: Annotated[Path, typer.Option("--spec", help="ranker spec: the label tasks and data.request_id")],
    registry: RegistryOpt,
    model: ModelOpt = None,
    guard: Annotated[list[str] | None, typer.Option(help="TASK (or ndcg) the canary must not be worse on "
                                                   "(repeatable; default: every label task)")] = None,
    min_users: Annotated[int, typer.Option(min=1, help="users per role before a verdict (else too-early)")] = 200,
    abort_if_worse: Annotated[bool, typer.Option(help="abort the canary when the check fails (CURRENT then serves "
                                                 "everyone)")] = False,
    out: Annotated[Path, typer.Option(help="writes the report it rests on here")] = Path("runs/canary-check"),
    bootstrap: Annotated[int, typer.Option(min=100, help="bootstrap resamples (users drawn with replacement)")] = RESAMPLES,
    seed: Annotated[int, typer.Option(help="seed of the bootstrap")] = 0,
    lower_better: Annotated[list[str] | None, typer.Option("--lower-better", help="TASK whose lower values are "
                                                           "better (repeatable)")] = None,
) -> None:
    """The running canary against CURRENT on the rows served since it started: worse on a guarded task (its 95 %
    interval below 0), a sample-ratio mismatch, ok, or too early. The verdict is written to the registry's
    CANARY_CHECK, which the servers export as `ranker_canary_check_failing` (the RankerCanaryWorse alert)."""
    from training.experiments.canary import check_canary
    from training.experiments.render import write

    try:
        spec = load_spec(spec_path)
        reg = open_registry(registry, model)
        checked = check_canary(reg, joined, spec, tuple(guard or ()), min_users, bootstrap, seed,
                               tuple(lower_better or ()))
        if checked is None:
            typer.echo(f"{reg.location}: no canary of {reg.model_name!r} is running: nothing to check")
            return
        check, report = checked
        if report is not None:
            write(report, out)
        reg.record_canary_check(check)  # first: if the abort below cannot be made, the servers page on it
        if check.failing and abort_if_worse:
            reg.abort_canary(reason=f"canary check: {check.verdict}" + (f" on {', '.join(check.worse)}"
                                                                         if check.worse else ""))
            check = dataclasses.replace(check, aborted=True)
            reg.record_canary_check(check)
    except RegistryLocked as e:
        fail(str(e), code=4)
    except (*ERRORS, RegistryError) as e:
        fail(str(e))
    users = ", ".join(f"{role} {n:,}" for role, n in check.users.items())
    line = f"canary v{check.version}: {check.verdict}" + (f" (worse on {', '.join(check.worse)})" if check.worse
                                                           else "") + f"; users {users}"
    typer.echo(line + ("; aborted: CURRENT serves everyone" if check.aborted else ""))
    if report is not None:
        typer.echo(f"report: {out}")
    if check.failing:
        raise typer.Exit(code=CHECK_FAILED)
