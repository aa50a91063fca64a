"""Feedback events and how they become labels: the contract between the spec, the server and the join.

A spec's `feedback:` section declares the events a frontend may send (`POST /v1/feedback`, or
Parquet files with FEEDBACK_SCHEMA's columns) and, per label column, the rule that turns a served
candidate's events into its label (`ranker logs join`). The exported manifest carries the section,
so the server checks event names and types against the model it serves.

    feedback:
      window: 24h                      # events up to 24 h after the impression count
      events: {click: flag, watch_seconds: number, rating: number}
      labels:
        click: any(click)
        watch_time: sum(watch_seconds) if click else null
        rating: last(rating)

A rule is `AGG(EVENT) [if EVENT [else DEFAULT]]`, over one (request_id, item_id)'s events inside
the window:
    any(e)    1 if an e event arrived, else 0          count(e)  how many (0 when none)
    sum(e)    sum of their values (0 when none)        min, max, mean(e)  null when none
    first(e), last(e)   the earliest / latest value by event time (null when none)
`if c` applies the rule only to candidates with at least one c event; the others get DEFAULT
(`null` or a number; without `else`, the aggregate's own empty value: 0 for any/count/sum, null for
the rest). So a satisfaction label stays null where it was never observed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EventType = Literal["flag", "number"]  # flag: the event itself is the signal (no value); number: a finite value
AGGREGATES = ("any", "count", "sum", "min", "max", "mean", "first", "last")
COUNTING = ("any", "count")  # read no value, so they take flag events too
ZERO_WHEN_EMPTY = ("any", "count", "sum")
BINARY_AGGREGATES = ("any", "min", "max", "first", "last")  # give 0/1 when the values are 0/1

# The columns of a feedback event, as the server writes them and as event files must have them
# (`value`, `ts` and `event_id` may be null; the server fills `ts` with the time it received the event).
FEEDBACK_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("item_id", pa.string()), ("event", pa.string()), ("value", pa.float64()),
    ("ts", pa.timestamp("ms", tz="UTC")), ("event_id", pa.string()),
])

_RULE = re.compile(r"^\s*(?P<agg>\w+)\s*\(\s*(?P<event>[^()\s]+)\s*\)"
                   r"(?:\s+if\s+(?P<cond>\S+)(?:\s+else\s+(?P<default>\S+))?)?\s*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FeedbackError(ValueError):
    """A feedback section or rule that cannot be used; the message names the key."""


@dataclass(frozen=True)
class LabelRule:
    """One label column's rule, parsed: label = AGG(event) over the pair's events, or `default` when `condition`
    (an event name) never arrived."""

    column: str  # the label column it writes (a label task's `column`, by default the task's name)
    aggregate: str
    event: str
    condition: str | None
    default: float | None  # None = null

    @property
    def empty(self) -> float | None:
        """The label of a candidate without any `event` (and the condition met)."""
        return 0.0 if self.aggregate in ZERO_WHEN_EMPTY else None


def parse_rule(column: str, text: str, events: dict[str, EventType]) -> LabelRule:
    """`AGG(EVENT) [if EVENT [else DEFAULT]]` -> a LabelRule; FeedbackError names the column and the problem."""
    where = f"feedback.labels.{column}"
    m = _RULE.match(text)
    if m is None:
        raise FeedbackError(f"{where}: {text!r} is not `AGG(EVENT) [if EVENT [else DEFAULT]]` "
                            f"(AGG one of {', '.join(AGGREGATES)})")
    agg, event, cond, default = m["agg"], m["event"], m["cond"], m["default"]
    if agg not in AGGREGATES:
        raise FeedbackError(f"{where}: unknown aggregate {agg!r}; use one of {', '.join(AGGREGATES)}")
    for name in (event, cond):
        if name is not None and name not in events:
            raise FeedbackError(f"{where}: event {name!r} is not declared in feedback.events {sorted(events)}")
    if agg not in COUNTING and events[event] != "number":
        raise FeedbackError(f"{where}: {agg}({event}) needs a value, and {event!r} is a flag event; use "
                            f"any({event}) or count({event}), or declare it `number`")
    rule = LabelRule(column, agg, event, cond, None)
    if default is None:
        return LabelRule(column, agg, event, cond, rule.empty)
    if cond is None:
        raise FeedbackError(f"{where}: `else` needs an `if EVENT` before it")
    if default == "null":
        return rule
    try:
        value = float(default)
    except ValueError:
        raise FeedbackError(f"{where}: else {default!r} is not null or a number") from None
    if not math.isfinite(value):
        raise FeedbackError(f"{where}: else {default!r} is not finite")
    return LabelRule(column, agg, event, cond, value)


def parse_window(text: str | float | int) -> float:
    """'24h', '30m', '7d', '90s' or a number of seconds -> seconds (> 0)."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = _DURATION.match(str(text))
        if m is None:
            raise FeedbackError(f"feedback.window: {text!r} is not a duration like 24h, 30m, 7d or 90s")
        seconds = float(m[1]) * _UNIT_SECONDS[m[2]]
    if not (math.isfinite(seconds) and seconds > 0):
        raise FeedbackError(f"feedback.window: {text!r} must be a positive duration")
    return seconds


class FeedbackConfig(BaseModel):
    """The spec's `feedback:` section (copied into the manifest): events the server takes, and label rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: str = Field("24h", description="attribution window: an event counts for an impression when it "
                        "arrives at most this long after it (`90s`, `30m`, `24h`, `7d`); impressions younger "
                        "than the window are not labelled yet", examples=["1h"])
    events: dict[str, EventType] = Field(
        min_length=1, description="the event names `POST /v1/feedback` accepts: `flag` (no value) or `number` "
        "(a finite value)", examples=[{"click": "flag", "watch_seconds": "number"}])
    labels: dict[str, str] = Field(
        min_length=1, description="label column (a label task's `column`, by default its name) -> rule `AGG(EVENT) [if EVENT [else DEFAULT]]`; AGG is any, count, "
        "sum, min, max, mean, first or last; without `else` a candidate lacking the `if` event gets the "
        "aggregate's empty value (0 for any/count/sum, else null)",
        examples=[{"click": "any(click)", "watch_time": "sum(watch_seconds) if click else null"}])

    @field_validator("events")
    @classmethod
    def _event_names(cls, events: dict[str, EventType]) -> dict[str, EventType]:
        for name in events:
            if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
                raise ValueError(f"event name {name!r}: use 1-64 letters, digits, `_`, `.`, `:` or `-`")
        return events

    @model_validator(mode="after")
    def _rules_parse(self) -> FeedbackConfig:
        parse_window(self.window)
        self.rules()
        return self

    @property
    def window_seconds(self) -> float:
        return parse_window(self.window)

    def rules(self) -> list[LabelRule]:
        return [parse_rule(column, text, self.events) for column, text in self.labels.items()]
