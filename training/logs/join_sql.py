"""The join as SQL text, built from the spec's label rules: DuckDB runs it here, Spark SQL runs it at scale.

Pure: a `JoinPlan` in, statements out, no engine. The statements read two relations, `impressions`
and `feedback` (views over the Parquet files, or Spark temp views), and use only what both engines
share: CTEs, `ROW_NUMBER() OVER (...)`, `CASE`, `min_by`/`max_by`, `INTERVAL 'n' SECOND`, and
`CAST(ts AS DATE)` under a UTC session time zone. Only identifier quoting differs by dialect.

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


def ctes(plan: JoinPlan, dialect: Dialect = "duckdb") -> dict[str, str]:
    """The named steps every statement is built from."""
    q = lambda n: _q(n, dialect)  # noqa: E731
    end, window = _ts(plan.end), _seconds(plan.window_seconds)
    reach = plan.window_seconds + plan.skew_seconds  # impressions an event in [start, end] may belong to
    low = f"ts >= {_ts(plan.start - timedelta(seconds=reach))} AND " if plan.start else ""
    shadow = f"({q('model_role')} IS NOT NULL AND {q('model_role')} = 'shadow')" if plan.shadow else "FALSE"
    state = (f"CASE WHEN {'ts < ' + _ts(plan.start) if plan.start else 'FALSE'} THEN 'before_start' "
             f"WHEN ts > {end} - {window} THEN 'pending' ELSE 'label' END")
    rank = "ROW_NUMBER() OVER (PARTITION BY request_id, item_id, {s} ORDER BY ts) AS _rn"
    cols = ", ".join(q(c) for c in plan.columns)
    return {
        # keys only: classifies events and counts rows for the report
        "imp_rows": (f"SELECT request_id, item_id, ts, {state} AS _state, {shadow} AS _shadow, "
                     f"{rank.format(s=shadow)} FROM impressions WHERE {low}ts < {end}"),
        "imp_keys": "SELECT request_id, item_id, ts, _state FROM imp_rows WHERE _rn = 1 AND NOT _shadow",
        # every column, for the output
        "imp": (f"SELECT {cols} FROM (SELECT {cols}, {state} AS _state, {rank.format(s='FALSE')} FROM impressions "
                f"WHERE {low}ts < {end} AND NOT {shadow}) d WHERE _rn = 1 AND _state = 'label'"),
        "ev": ("SELECT request_id, item_id, event, value, ts FROM (SELECT request_id, item_id, event, value, ts, "
               "event_id, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ts) AS _rn FROM feedback) d "
               "WHERE event_id IS NULL OR _rn = 1"),
        "ev_class": (f"SELECT e.request_id, e.item_id, e.event, e.value, e.ts, {_event_class(plan)} AS _class "
                     "FROM ev e LEFT JOIN imp_keys i ON e.request_id = i.request_id AND e.item_id = i.item_id"),
        "labels": (f"SELECT request_id, item_id, {', '.join(_aggregates(plan.rules, q))} FROM ev_class "
                   "WHERE _class = 'counted' GROUP BY request_id, item_id"),
    }


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


def _with(plan: JoinPlan, names: Sequence[str], dialect: Dialect) -> str:
    steps = ctes(plan, dialect)
    return "WITH\n" + ",\n".join(f"{n} AS (\n  {steps[n]}\n)" for n in names) + "\n"


def join_statement(plan: JoinPlan, dialect: Dialect = "duckdb") -> str:
    """The labelled rows: every impression column (renamed), one label column per rule, and `date`."""
    q = lambda n: _q(n, dialect)  # noqa: E731
    cols = [f"i.{q(c)} AS {q(plan.renames.get(c, c))}" for c in plan.columns]
    labels = [_label(i, r, q) for i, r in enumerate(plan.rules)]
    return (_with(plan, ["imp_rows", "imp_keys", "ev", "ev_class", "labels", "imp"], dialect)
            + f"SELECT {', '.join(cols + labels)}, CAST(CAST(i.ts AS DATE) AS STRING) AS {q(PARTITION)}\n"
            + "FROM imp i LEFT JOIN labels l ON i.request_id = l.request_id AND i.item_id = l.item_id")


def impression_report_statement(plan: JoinPlan, dialect: Dialect = "duckdb") -> str:
    """Rows per state: (state, rows, shadow, duplicates, kept)."""
    return (_with(plan, ["imp_rows"], dialect)
            + "SELECT _state, count(*) AS rows_read, sum(CASE WHEN _shadow THEN 1 ELSE 0 END) AS shadow, "
            "sum(CASE WHEN NOT _shadow AND _rn > 1 THEN 1 ELSE 0 END) AS duplicates, "
            "sum(CASE WHEN NOT _shadow AND _rn = 1 THEN 1 ELSE 0 END) AS kept FROM imp_rows GROUP BY _state")


def event_report_statement(plan: JoinPlan, dialect: Dialect = "duckdb") -> str:
    """Events per (class, event name), after the event_id dedupe; the rows read and dropped come with it."""
    return (_with(plan, ["imp_rows", "imp_keys", "ev", "ev_class"], dialect)
            + "SELECT _class, event, count(*) AS events FROM ev_class GROUP BY _class, event")


def event_dedupe_statement() -> str:
    """(events read, events kept after the event_id dedupe)."""
    return ("SELECT count(*) AS events_read, sum(CASE WHEN event_id IS NULL OR _rn = 1 THEN 1 ELSE 0 END) AS kept "
            "FROM (SELECT event_id, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ts) AS _rn FROM feedback) d")
