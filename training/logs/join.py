"""`ranker logs join` on DuckDB: read the two Parquet trees, run training/logs/join_sql.py's statements
with a memory limit (DuckDB spills past it), write date partitions atomically and report the counts.

Each output partition `date=YYYY-MM-DD/` is written to a temp directory under --out and renamed into
place, so a rerun over the same window replaces a day, never duplicates it. --start is floored to
midnight UTC so every partition a run writes holds the whole day up to the run's horizon.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from training.logs.join_sql import (
    PARTITION,
    REQUIRED_FEEDBACK,
    REQUIRED_IMPRESSION,
    JoinPlan,
    event_report_statement,
    impression_report_statement,
    join_statement,
    script,
    shadow_statement,
    step_statements,
)
from training.spec import RankerSpec

# "_": pyarrow (so `ranker train`) and Spark skip files named with a leading _ or . inside a dataset
REPORT = "_join_report.json"
_TMP = ".join-tmp-"


class JoinError(ValueError):
    """Inputs the join cannot use; the message names the directory, column or key."""


@dataclass(frozen=True)
class Engine:
    """DuckDB's resources: memory_limit like '3GB' (spills to temp_directory past it)."""

    memory_limit: str = "3GB"
    threads: int = 0  # 0 = every core
    temp_directory: str | None = None


@dataclass
class JoinReport:
    """What a run read, wrote and left for later; written as _join_report.json beside the partitions."""

    start: str | None
    end: str
    window_seconds: float
    impressions_read: int = 0  # rows with start <= ts < end (shadow rows included)
    shadow_excluded: int = 0
    duplicate_impressions: int = 0
    labelled_rows: int = 0
    pending: int = 0  # impressions whose window has not closed: labelled by a later run
    events_read: int = 0
    duplicate_events: int = 0
    events: dict[str, int] = field(default_factory=dict)  # class -> count (counted, late, orphan, ...)
    events_by_name: dict[str, dict[str, int]] = field(default_factory=dict)  # event -> class -> count
    partitions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        ev = ", ".join(f"{k} {v:,}" for k, v in sorted(self.events.items()))
        return [f"window [{self.start or 'first impression'}, {self.end}), attribution {self.window_seconds:g} s",
                f"impressions: {self.impressions_read:,} read, {self.shadow_excluded:,} shadow excluded, "
                f"{self.duplicate_impressions:,} duplicates dropped, {self.labelled_rows:,} labelled rows written, "
                f"{self.pending:,} pending (window still open)",
                f"events: {self.events_read:,} read, {self.duplicate_events:,} duplicates dropped; {ev or 'none'}",
                f"partitions: {', '.join(self.partitions) or 'none'}"]


def parquet_source(path: str, what: str) -> list[str]:
    """A directory (every *.parquet under it), a file or a glob -> its files; JoinError when none."""
    p = Path(path)
    files = sorted(glob.glob(str(p / "**" / "*.parquet"), recursive=True)) if p.is_dir() else sorted(
        glob.glob(path, recursive=True))
    files = [f for f in files if "/." not in f[len(str(p)):]]  # hidden dirs: writers' temp files
    if not files and what == "impressions":
        raise JoinError(f"--impressions {path!r}: no Parquet files")
    return files


def connect(engine: Engine, database: str = ":memory:"):
    """database: a file for the steps' tables (compressed on disk, so a 50M-key table needs no RAM)."""
    import duckdb

    con = duckdb.connect(database)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{engine.memory_limit}'")
    con.execute("SET preserve_insertion_order = false")  # lets COPY stream instead of buffering in order
    if engine.threads:
        con.execute(f"SET threads = {int(engine.threads)}")
    if engine.temp_directory:
        con.execute(f"SET temp_directory = '{engine.temp_directory}'")
    return con


def register_views(con, impressions: list[str], feedback: list[str]) -> list[str]:
    """`impressions` and `feedback` views; returns the impression columns. JoinError names a missing column."""
    con.execute(f"CREATE VIEW impressions AS SELECT * FROM read_parquet({impressions!r}, union_by_name = true, "
                "hive_partitioning = false)")
    columns = [r[0] for r in con.execute("DESCRIBE impressions").fetchall()]
    _require(columns, REQUIRED_IMPRESSION, "impression files")
    if feedback:
        con.execute(f"CREATE VIEW feedback_files AS SELECT * FROM read_parquet({feedback!r}, union_by_name = true, "
                    "hive_partitioning = false)")
        _require([r[0] for r in con.execute("DESCRIBE feedback_files").fetchall()], REQUIRED_FEEDBACK,
                 "feedback files")
        source = "feedback_files"
    else:  # no events yet: every labelled impression is a negative
        source = ("(SELECT NULL AS request_id, NULL AS item_id, NULL AS event, NULL AS value, NULL AS ts, "
                  "NULL AS event_id WHERE FALSE)")
    con.execute("CREATE VIEW feedback AS SELECT CAST(request_id AS VARCHAR) AS request_id, CAST(item_id AS VARCHAR) "
                "AS item_id, CAST(event AS VARCHAR) AS event, CAST(value AS DOUBLE) AS value, "
                f"CAST(ts AS TIMESTAMPTZ) AS ts, CAST(event_id AS VARCHAR) AS event_id FROM {source}")
    return columns


def _require(have: list[str], need: tuple[str, ...], what: str) -> None:
    missing = [c for c in need if c not in have]
    if missing:
        raise JoinError(f"{what}: missing column(s) {', '.join(repr(c) for c in missing)}; they have {sorted(have)}")


def renames(columns: list[str], spec: RankerSpec) -> dict[str, str]:
    """Impression column -> output column, so the output has the spec's column names; JoinError on a clash."""
    d = spec.data
    out = {"request_id": d.request_id or "request_id", "item_id": d.item_id or "item_id", "ts": d.timestamp or "ts"}
    features = {f.name for f in (*spec.features.categorical, *spec.features.numeric)}
    for c in columns:
        if c.startswith("feature_") and c[len("feature_"):] in features:
            out[c] = c[len("feature_"):]
    if out["item_id"] in columns and out["item_id"] != "item_id":  # the id feature was logged under its name
        out.pop("item_id")
    return {k: v for k, v in out.items() if k in columns and k != v}


def check_names(plan: JoinPlan) -> None:
    seen: set[str] = set()
    for name in [*plan.output_columns, PARTITION]:
        if name in seen:
            raise JoinError(f"output column {name!r} twice: a label column (feedback.labels) or a renamed "
                            "impression column clashes with another column; rename the spec's key")
        seen.add(name)


def horizon(con, end: datetime | None) -> datetime:
    """--end, else the newest event's ts (events after it are unknown), else now."""
    if end is not None:
        return end
    newest = con.execute("SELECT max(ts) FROM feedback").fetchone()[0]
    return newest.astimezone(UTC) if newest is not None else datetime.now(UTC)


def floor_day(t: datetime | None) -> datetime | None:
    return None if t is None else t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def check_out(out: Path) -> None:
    """--out is new, empty, or an earlier join's output; anything else is refused."""
    if not out.exists():
        return
    if not out.is_dir():
        raise JoinError(f"--out {out}: not a directory")
    other = [p.name for p in out.iterdir()
             if not (p.name.startswith(f"{PARTITION}=") or p.name == REPORT or p.name.startswith(_TMP))]
    if other:
        raise JoinError(f"--out {out}: holds {sorted(other)[:3]}, not a join's output (date=YYYY-MM-DD/ and "
                        f"{REPORT}); choose an empty or new directory")


def replace_partitions(tmp: Path, out: Path) -> list[str]:
    """Move each date=... directory of tmp into out, replacing the old one by rename."""
    names = sorted(p.name for p in tmp.iterdir() if p.name.startswith(f"{PARTITION}="))
    for name in names:
        target = out / name
        old = out / f"{_TMP}old-{uuid.uuid4().hex}"
        if target.exists():
            os.rename(target, old)
        os.rename(tmp / name, target)
        shutil.rmtree(old, ignore_errors=True)
    return [n.split("=", 1)[1] for n in names]


def fill_report(con, plan: JoinPlan, report: JoinReport) -> None:
    for state, rows, dups, kept in con.execute(impression_report_statement(plan)).fetchall():
        if state == "before_start":
            continue  # read only to recognise an earlier run's events
        report.impressions_read += rows
        report.duplicate_impressions += dups
        if state == "pending":
            report.pending += kept
        else:
            report.labelled_rows += kept
    report.shadow_excluded = con.execute(shadow_statement(plan)).fetchone()[0]
    report.impressions_read += report.shadow_excluded
    report.events_read = con.execute("SELECT count(*) FROM feedback").fetchone()[0]
    report.duplicate_events = report.events_read - con.execute("SELECT count(*) FROM ev_class").fetchone()[0]
    for cls, event, n in con.execute(event_report_statement(plan)).fetchall():
        report.events[cls] = report.events.get(cls, 0) + n
        report.events_by_name.setdefault(str(event), {})[cls] = n


def plan_for(columns: list[str], spec: RankerSpec, window_seconds: float | None, skew_seconds: float,
             start: datetime | None, end: datetime) -> JoinPlan:
    if spec.feedback is None:
        raise JoinError("the spec has no feedback: section (events and label rules); add one (configs/demo.yaml)")
    plan = JoinPlan(tuple(columns), tuple(spec.feedback.rules()), window_seconds or spec.feedback.window_seconds,
                    skew_seconds, floor_day(start), end, renames(columns, spec))
    check_names(plan)
    return plan


def run_join(impressions: str, feedback: str, spec: RankerSpec, out: Path, *, window_seconds: float | None = None,
             skew_seconds: float = 5.0, start: datetime | None = None, end: datetime | None = None,
             engine: Engine = Engine()) -> JoinReport:
    """Join, write the partitions and _join_report.json under `out`, and return the report."""
    t0 = datetime.now(UTC)
    check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f"{_TMP}{uuid.uuid4().hex}"
    tmp.mkdir()
    spill = engine.temp_directory or str(tmp / "spill")
    con = connect(Engine(engine.memory_limit, engine.threads, spill), str(tmp / "join.duckdb"))
    try:
        columns = register_views(con, parquet_source(impressions, "impressions"), parquet_source(feedback, "feedback"))
        plan = plan_for(columns, spec, window_seconds, skew_seconds, start, horizon(con, end))
        report = JoinReport(plan.start.isoformat() if plan.start else None, plan.end.isoformat(), plan.window_seconds)
        rows = tmp / "rows"
        for statement in step_statements(plan):
            con.execute(statement)
        con.execute(f"COPY ({join_statement(plan)}) TO '{rows}' (FORMAT parquet, PARTITION_BY ({PARTITION}), "
                    "COMPRESSION zstd)")
        fill_report(con, plan, report)
        report.partitions = replace_partitions(rows, out) if rows.exists() else []
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report.seconds = round((datetime.now(UTC) - t0).total_seconds(), 3)
    (out / REPORT).write_text(json.dumps(asdict(report), indent=2) + "\n")
    return report


def print_sql(impressions: str, spec: RankerSpec, *, dialect: str, window_seconds: float | None,
              skew_seconds: float, start: datetime | None, end: datetime | None) -> str:
    """The join's statements for this data and spec (its columns come from the impression files' schema)."""
    con = connect(Engine())
    try:
        columns = register_views(con, parquet_source(impressions, "impressions"), [])
        plan = plan_for(columns, spec, window_seconds, skew_seconds, start,
                        end or datetime.now(UTC).replace(microsecond=0))
    finally:
        con.close()
    return script(plan, dialect)  # type: ignore[arg-type]


def as_counts(report: JoinReport) -> Mapping[str, int]:
    return {k: v for k, v in asdict(report).items() if isinstance(v, int)}
