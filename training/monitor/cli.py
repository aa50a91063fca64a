"""`ranker monitor drift`: served rows against the bundle's training distribution, for a cron job.

Exit 0: nothing crossed an alert threshold; 1: something did (named on stderr); 2: bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.contract.bundle import BundleError, Manifest, read_manifest
from training.data.instants import option_instant
from training.monitor.data import MonitorInputError, Served, read_served
from training.monitor.drift import (
    ALERT,
    UNJUDGED,
    Drift,
    Thresholds,
    judge_categorical,
    judge_head,
    judge_numeric,
)
from training.monitor.report import markdown, names, report_dict, write_report

monitor_app = typer.Typer(help="Watch what a served model sees: drift of its inputs and scores.", no_args_is_help=True)


@monitor_app.command("drift")
def drift_command(
    bundle: Annotated[Path, typer.Option(help="the served bundle (its manifest.json is read)")],
    data: Annotated[str, typer.Option(help="impression log (e.g. LOG_DIR/impressions) or Parquet rows with the "
                                      "features' columns: a directory, a file or a glob")],
    out: Annotated[Path | None, typer.Option(help="also write drift.md and drift.json here")] = None,
    start: Annotated[str | None, typer.Option(help="rows with ts from this time (UTC)")] = None,
    end: Annotated[str | None, typer.Option(help="rows with ts before this time (UTC)")] = None,
    psi_warn: Annotated[float, typer.Option(min=0.0, help="PSI of a moderate shift")] = Thresholds.psi_warn,
    psi_alert: Annotated[float, typer.Option(min=0.0, help="PSI of a significant shift: exit 1")] = Thresholds.psi_alert,
    rate_alert: Annotated[float, typer.Option(min=0.0, max=1.0, help="an OOV/defaulted/clipped share this far "
                                              "above its training share: exit 1")] = Thresholds.rate_alert,
    max_rows: Annotated[int, typer.Option(min=1, help="read at most this many rows")] = 1_000_000,
) -> None:
    """PSI per feature and head, OOV/defaulted/clipped rates; exit 1 when an alert threshold is crossed."""
    from training.cli_options import fail

    th = Thresholds(psi_warn=psi_warn, psi_alert=psi_alert, rate_alert=rate_alert)
    try:
        manifest = read_manifest(bundle)
        served = read_served(data, manifest, option_instant(start, "--start"), option_instant(end, "--end"), max_rows)
    except (BundleError, MonitorInputError) as e:
        fail(str(e))
    if served.rows == 0:
        fail(f"{data}: no rows{' where ' + ' and '.join(served.filters) if served.filters else ''}")
    verdicts = judge(manifest, served, th)
    if all(v.status == UNJUDGED for v in verdicts):
        fail(f"nothing to judge: {'; '.join(f'{v.name}: {v.note}' for v in verdicts)}")
    title = {"model_name": manifest.model_name, "model_version": manifest.model_version, "data": data,
             "rows": served.rows, "filter": f" where {' and '.join(served.filters)}" if served.filters else ""}
    report = report_dict(title, verdicts, th)
    typer.echo(markdown(report), nl=False)
    if out is not None:
        write_report(out, report)
    if report["unjudged"]:
        typer.echo(f"cannot judge: {', '.join(report['unjudged'])}", err=True)
    if report["alerts"]:
        typer.echo(f"alert: {', '.join(_alert_text(v) for v in verdicts if v.status == ALERT)}", err=True)
        raise typer.Exit(code=1)


def judge(manifest: Manifest, served: Served, th: Thresholds) -> list[Drift]:
    """A verdict per feature of the manifest (unjudged when the data lacks it) and per head."""
    dist, out = manifest.training_distribution, []
    for enc in manifest.features.all():
        column = served.features.get(enc.name)
        if column is None:
            out.append(Drift(enc.name, enc.kind, 0, UNJUDGED, note="not in the data"))
            continue
        flags = served.flags.get(enc.name) if served.flags is not None else None
        if enc.kind == "numeric":
            out.append(judge_numeric(enc, dist.numeric.get(enc.name) if dist else None, column, flags, th))
        else:
            out.append(judge_categorical(enc, dist.categorical.get(enc.name) if dist else None, column, flags, th))
    for task in manifest.tasks:
        if task.name not in served.heads:
            out.append(Drift(task.name, "head", 0, UNJUDGED, note=f"no head_{task.name} column"))
        else:
            out.append(judge_head(task.name, task.score_stats, served.heads[task.name], th))
    return out


def _alert_text(v: Drift) -> str:
    label = names([v], ALERT)[0]
    return f"{label} (PSI {v.psi:.3f}{'; ' + v.note if v.note else ''})" if v.psi is not None else label
