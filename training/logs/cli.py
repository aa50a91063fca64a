"""`ranker logs`: the impression log and feedback events turned into training data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from service.contract.feedback import FeedbackError, parse_window
from training.data.instants import option_instant

logs_app = typer.Typer(help="Join the server's impression log with feedback events into training data.",
                       no_args_is_help=True)


@logs_app.command("join")
def join_command(
    impressions: Annotated[str, typer.Option(help="impression log: a directory (every *.parquet under it), "
                                             "e.g. LOG_DIR/impressions, a file or a glob")],
    spec_path: Annotated[Path, typer.Option("--spec", help="ranker spec: its feedback section gives the label "
                                            "rules, its data section the output's column names")],
    feedback: Annotated[str | None, typer.Option(help="feedback events (FEEDBACK_SCHEMA's columns): a directory, "
                                                 "file or glob; the server's LOG_DIR/feedback or a frontend's")] = None,
    out: Annotated[Path | None, typer.Option(help="output: date=YYYY-MM-DD/ partitions and _join_report.json; "
                                             "a rerun replaces the days it writes")] = None,
    window: Annotated[str | None, typer.Option(help="attribution window (24h, 30m)", show_default="the spec's "
                                               "feedback.window")] = None,
    skew: Annotated[str, typer.Option(help="clock skew allowed: an event up to this long before its impression "
                                      "still counts (earlier ones are reported as early)")] = "5s",
    start: Annotated[str | None, typer.Option(help="label impressions from this date (UTC; floored to midnight "
                                              "so each day is written whole)", show_default="all")] = None,
    last_days: Annotated[int | None, typer.Option(min=1, help="--start = midnight UTC N days ago (the nightly "
                                                  "form; relabels the days whose windows were still open)")] = None,
    end: Annotated[str | None, typer.Option(help="the horizon: impressions with ts + window <= end are "
                                            "labelled, younger ones are pending", show_default="the newest "
                                            "event's ts (now without events)")] = None,
    memory_limit: Annotated[str, typer.Option(help="DuckDB memory_limit; it spills to disk past it")] = "3GB",
    threads: Annotated[int, typer.Option(min=0, help="DuckDB threads (0 = every core)")] = 0,
    temp_dir: Annotated[str | None, typer.Option(help="DuckDB spill directory", show_default="inside --out")] = None,
    print_sql: Annotated[bool, typer.Option("--print-sql", help="print the join statement and exit")] = False,
    dialect: Annotated[str, typer.Option(help="--print-sql dialect: duckdb or spark")] = "duckdb",
) -> None:
    """Label served impressions by the spec's feedback rules: the table `ranker train` reads."""
    from training.cli_options import USER_ERRORS, fail
    from training.logs.join import Engine, JoinError, run_join
    from training.logs.join import print_sql as sql_text
    from training.spec import load_spec

    try:
        spec = load_spec(spec_path)
        window_s = parse_window(window) if window is not None else None
        skew_s = 0.0 if skew.strip() in ("0", "0s") else parse_window(skew)
        t0, t1 = option_instant(start, "--start"), option_instant(end, "--end")
        if last_days is not None:
            if t0 is not None:
                fail("--start and --last-days: give one")
            t0 = datetime.now(UTC) - timedelta(days=last_days)
        if print_sql:
            if dialect not in ("duckdb", "spark"):
                fail(f"--dialect {dialect!r}: use duckdb or spark")
            typer.echo(sql_text(impressions, spec, dialect=dialect, window_seconds=window_s, skew_seconds=skew_s,
                                start=t0, end=t1))
            return
        if feedback is None or out is None:
            fail(f"{'--feedback' if feedback is None else '--out'} is required (unless --print-sql)")
        report = run_join(impressions, feedback, spec, out, window_seconds=window_s, skew_seconds=skew_s,
                          start=t0, end=t1, engine=Engine(memory_limit, threads, temp_dir))
    except (*USER_ERRORS, JoinError, FeedbackError) as e:
        fail(str(e))
    except _duckdb_errors() as e:
        fail(f"the join failed in DuckDB: {str(e).splitlines()[0]}")
    for line in report.lines():
        typer.echo(line)
    typer.echo(f"wrote {report.labelled_rows:,} rows under {out} ({out / '_join_report.json'})")


def _duckdb_errors() -> tuple[type[Exception], ...]:
    import duckdb

    return (duckdb.IOException, duckdb.BinderException, duckdb.ConversionException, duckdb.OutOfMemoryException)
