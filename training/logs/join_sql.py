"""The join as SQL text, built from the spec's label rules: DuckDB runs it here, Spark SQL runs it at scale.

Pure: a `JoinPlan` in, statements out, no engine. The statements read two relations, `impressions`
and `feedback` (views over the Parquet files, or Spark temp views), and use only what both engines
share: CTEs, `ROW_NUMBER() OVER (...)`, `CASE`, `min_by`/`max_by`, `INTERVAL 'n' SECOND`, and
`CAST(ts AS DATE)` under a UTC session time zone. Only identifier quoting differs by dialect.

Two steps build small tables (one row per shown key; the events with their class), then one statement
writes the rows: only keys logged twice are ranked, so the log is streamed, never sorted.

The semantics (docs/OPERATIONS.md, "The join"):
- impressions in [start, end) are deduplicated per (request_id, item_id), the first by ts kept; rows
  with model_role 'shadow' were never shown and are left out before that;
- an impression is labelled when its window has closed (ts + window <= end), else it is `pending`;
- events are deduplicated by event_id (events without one are all kept) and each is classed
  `counted` (impression.ts - skew <= event.ts <= impression.ts + window), `early`, `late`, `pending`
  (its impression is not labelled yet), `orphan` (no impression), `before_start` (its impression, or
  the event itself, precedes start: an earlier run's), `after_end` or `untimed` (null ts);
- each label is its rule's aggregate over the counted events (service/contract/feedback.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from service.contract.feedback import LabelRule

Dialect = Literal["duckdb", "spark"]
KEY = ("request_id", "item_id")
REQUIRED_IMPRESSION = ("request_id", "item_id", "ts", "position")
REQUIRED_FEEDBACK = ("request_id", "item_id", "event", "value", "ts", "event_id")
PARTITION = "date"  # the output's hive partition column: the impression's UTC date


@dataclass(frozen=True)
class JoinPlan:
    """What one run joins. columns: the impression files' columns; renames: impression column -> output
    column (request id, item id and timestamp by the spec's data keys, `feature_<name>` back to <name>)."""

    columns: tuple[str, ...]
    rules: tuple[LabelRule, ...]
    window_seconds: float
    skew_seconds: float
    start: datetime | None  # UTC; impressions from here are labelled
    end: datetime  # UTC; the horizon: events up to here are known
    renames: Mapping[str, str]

    @property
    def shadow(self) -> bool:
        return "model_role" in self.columns

    @property
    def output_columns(self) -> list[str]:
        return [self.renames.get(c, c) for c in self.columns] + [r.column for r in self.rules]


def _q(name: str, dialect: Dialect) -> str:
    if dialect == "spark":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def _ts(value: datetime) -> str:
    return f"TIMESTAMP '{value.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]}'"


def _seconds(seconds: float) -> str:
    return f"INTERVAL '{seconds:g}' SECOND"


def _s(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _shadow(plan: JoinPlan, q, prefix: str = "") -> str:
    if not plan.shadow:
        return "FALSE"
    role = prefix + q("model_role")
    return f"({role} IS NOT NULL AND {role} = 'shadow')"


def _labelled(plan: JoinPlan, ts: str) -> str:
    """The impressions this run labels: start <= ts and ts + window <= end."""
    since = f"{ts} >= {_ts(plan.start)} AND " if plan.start else ""
    return f"{since}{ts} <= {_ts(plan.end)} - {_seconds(plan.window_seconds)}"


def _read(plan: JoinPlan, ts: str) -> str:
    """The impressions read: back to start - window - skew (an earlier run's, to recognise their events)."""
    reach = plan.window_seconds + plan.skew_seconds
    low = f"{ts} >= {_ts(plan.start - timedelta(seconds=reach))} AND " if plan.start else ""
    return f"{low}{ts} < {_ts(plan.end)}"


def steps(plan: JoinPlan, dialect: Dialect = "duckdb") -> dict[str, str]:
    """The two tables the join and the report read, in order: name -> query.

    imp_keys: one row per (request_id, item_id) shown (shadow rows left out): the first ts, how many
    rows, and the state (label / pending / before_start). ev_class: each event after the event_id
    dedupe, with its class."""
    q = lambda n: _q(n, dialect)  # noqa: E731
    start = f"ts < {_ts(plan.start)}" if plan.start else "FALSE"
    state = (f"CASE WHEN {start} THEN 'before_start' WHEN ts > {_ts(plan.end)} - {_seconds(plan.window_seconds)} "
             "THEN 'pending' ELSE 'label' END")
    return {
        "imp_keys": (f"SELECT request_id, item_id, ts, n, {state} AS _state FROM (SELECT request_id, item_id, "
                     f"min(ts) AS ts, count(*) AS n FROM impressions WHERE {_read(plan, 'ts')} AND NOT "
                     f"{_shadow(plan, q)} GROUP BY request_id, item_id) k"),
        "ev_class": (f"SELECT e.request_id, e.item_id, e.event, e.value, e.ts, {_event_class(plan)} AS _class FROM "
                     "(SELECT request_id, item_id, event, value, ts FROM (SELECT request_id, item_id, event, value, "
                     "ts, event_id, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ts) AS _rn FROM feedback) d "
                     "WHERE event_id IS NULL OR _rn = 1) e "
                     "LEFT JOIN imp_keys i ON e.request_id = i.request_id AND e.item_id = i.item_id"),
    }


def step_statements(plan: JoinPlan, dialect: Dialect = "duckdb") -> list[str]:
    """`CREATE TABLE name AS query` (DuckDB, on disk) or `CACHE TABLE name AS query` (Spark) for each step."""
    verb = "CACHE TABLE" if dialect == "spark" else "CREATE OR REPLACE TABLE"
    return [f"{verb} {name} AS\n{query}" for name, query in steps(plan, dialect).items()]


def _first_rows(plan: JoinPlan, q) -> str:
    """Every column of the labelled impressions, one row per key: the keys logged once pass straight
    through; only the few logged twice are ranked by ts (a sort of them, not of the whole log)."""
    cols = ", ".join(q(c) for c in plan.columns)
    icols = ", ".join("i." + q(c) for c in plan.columns)
    on = "i.request_id = d.request_id AND i.item_id = d.item_id"
    shadow = _shadow(plan, q, "i.")
    once = (f"SELECT {icols} FROM impressions i LEFT JOIN dup_keys d ON {on} WHERE d.request_id IS NULL AND "
            f"{_labelled(plan, 'i.ts')} AND NOT {shadow}")
    twice = (f"SELECT {cols} FROM (SELECT {icols}, ROW_NUMBER() OVER (PARTITION BY i.request_id, i.item_id "
             f"ORDER BY i.ts) AS _rn FROM impressions i JOIN dup_keys d ON {on} WHERE {_read(plan, 'i.ts')} AND NOT "
             f"{shadow}) x WHERE _rn = 1 AND {_labelled(plan, 'ts')}")
    return f"{once}\n  UNION ALL\n  {twice}"


def _event_class(plan: JoinPlan) -> str:
    start = f"e.ts < {_ts(plan.start)}" if plan.start else "FALSE"
    return ("CASE WHEN e.ts IS NULL THEN 'untimed' "
            f"WHEN e.ts > {_ts(plan.end)} THEN 'after_end' "
            f"WHEN i._state IS NULL THEN CASE WHEN {start} THEN 'before_start' ELSE 'orphan' END "
            "WHEN i._state = 'before_start' THEN 'before_start' "
            f"WHEN e.ts < i.ts - {_seconds(plan.skew_seconds)} THEN 'early' "
            f"WHEN e.ts > i.ts + {_seconds(plan.window_seconds)} THEN 'late' "
            "WHEN i._state = 'pending' THEN 'pending' ELSE 'counted' END")


def _events(rules: Sequence[LabelRule]) -> list[str]:
    names = [r.event for r in rules] + [r.condition for r in rules if r.condition]
    return list(dict.fromkeys(names))


def _aggregates(rules: Sequence[LabelRule], q) -> list[str]:
    """Per (request_id, item_id): n_<e> (how many e events) for every event a rule reads, and each
    rule's value aggregate."""
    out = [f"sum(CASE WHEN event = {_s(e)} THEN 1 ELSE 0 END) AS {q('_n_' + e)}" for e in _events(rules)]
    for i, r in enumerate(rules):
        value = f"CASE WHEN event = {_s(r.event)} THEN value END"
        ordered = f"CASE WHEN event = {_s(r.event)} AND value IS NOT NULL THEN ts END"
        expr = {"sum": f"sum({value})", "min": f"min({value})", "max": f"max({value})", "mean": f"avg({value})",
                "first": f"min_by({value}, {ordered})", "last": f"max_by({value}, {ordered})"}.get(r.aggregate)
        if expr is not None:
            out.append(f"{expr} AS {q(f'_v{i}')}")
    return out


def _label(i: int, r: LabelRule, q) -> str:
    n = f"coalesce(l.{q('_n_' + r.event)}, 0)"
    value = {"any": f"CASE WHEN {n} > 0 THEN 1.0 ELSE 0.0 END", "count": n,
             "sum": f"CASE WHEN {n} > 0 THEN coalesce(l.{q(f'_v{i}')}, 0.0) ELSE 0.0 END"}.get(
        r.aggregate, f"l.{q(f'_v{i}')}")
    if r.condition is not None:
        default = "NULL" if r.default is None else repr(float(r.default))
        value = f"CASE WHEN coalesce(l.{q('_n_' + r.condition)}, 0) > 0 THEN {value} ELSE {default} END"
    return f"CAST({value} AS DOUBLE) AS {q(r.column)}"


def join_statement(plan: JoinPlan, dialect: Dialect = "duckdb") -> str:
    """The labelled rows (after step_statements): every impression column (renamed), one label column per
    rule, and `date`."""
    q = lambda n: _q(n, dialect)  # noqa: E731
    cols = [f"i.{q(c)} AS {q(plan.renames.get(c, c))}" for c in plan.columns]
    labels = [_label(i, r, q) for i, r in enumerate(plan.rules)]
    return ("WITH\ndup_keys AS (\n  SELECT request_id, item_id FROM imp_keys WHERE n > 1\n),\n"
            f"labels AS (\n  SELECT request_id, item_id, {', '.join(_aggregates(plan.rules, q))} FROM ev_class "
            "WHERE _class = 'counted' GROUP BY request_id, item_id\n),\n"
            f"imp AS (\n  {_first_rows(plan, q)}\n)\n"
            f"SELECT {', '.join(cols + labels)}, CAST(CAST(i.ts AS DATE) AS STRING) AS {q(PARTITION)}\n"
            "FROM imp i LEFT JOIN labels l ON i.request_id = l.request_id AND i.item_id = l.item_id")


def script(plan: JoinPlan, dialect: Dialect = "duckdb") -> str:
    """The whole join as the engine runs it: the steps, then the join (`--print-sql`)."""
    return ";\n\n".join([*step_statements(plan, dialect), join_statement(plan, dialect)]) + ";"


def impression_report_statement(plan: JoinPlan, dialect: Dialect = "duckdb") -> str:
    """Per state: (state, rows, duplicates, kept); shadow rows are counted by shadow_statement."""
    return ("SELECT _state, sum(n) AS rows_read, sum(n - 1) AS duplicates, count(*) AS kept FROM imp_keys "
            "GROUP BY _state")


def shadow_statement(plan: JoinPlan, dialect: Dialect = "duckdb") -> str:
    """Shadow rows with start <= ts < end."""
    since = f"ts >= {_ts(plan.start)} AND " if plan.start else ""
    return (f"SELECT count(*) FROM impressions WHERE {since}ts < {_ts(plan.end)} AND "
            f"{_shadow(plan, lambda n: _q(n, dialect))}")


def event_report_statement(plan: JoinPlan, dialect: Dialect = "duckdb") -> str:
    """Events per (class, event name), after the event_id dedupe."""
    return "SELECT _class, event, count(*) AS events FROM ev_class GROUP BY _class, event"
