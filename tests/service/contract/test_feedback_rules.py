"""The feedback section's rules and window (service/contract/feedback.py): parsed once, errors name the key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.contract.feedback import FeedbackConfig, FeedbackError, LabelRule, parse_rule, parse_window

EVENTS = {"click": "flag", "watch_seconds": "number", "rating": "number"}


@pytest.mark.parametrize(("text", "expected"), [
    ("any(click)", LabelRule("t", "any", "click", None, 0.0)),
    ("count(click)", LabelRule("t", "count", "click", None, 0.0)),
    ("sum(watch_seconds) if click", LabelRule("t", "sum", "watch_seconds", "click", 0.0)),
    ("sum(watch_seconds) if click else null", LabelRule("t", "sum", "watch_seconds", "click", None)),
    ("last(rating)", LabelRule("t", "last", "rating", None, None)),
    ("  max( rating )  if click else -1.5 ", LabelRule("t", "max", "rating", "click", -1.5)),
])
def test_rules_parse_to_their_aggregate_event_condition_and_default(text: str, expected: LabelRule) -> None:
    assert parse_rule("t", text, EVENTS) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("click", "is not `AGG(EVENT)"),
    ("median(rating)", "unknown aggregate 'median'"),
    ("any(scroll)", "event 'scroll' is not declared"),
    ("any(click) if scroll", "event 'scroll' is not declared"),
    ("sum(click)", "sum(click) needs a value"),
    ("any(click) else 0", "is not `AGG(EVENT)"),
    ("last(rating) if click else nan", "is not finite"),
    ("last(rating) if click else maybe", "is not null or a number"),
])
def test_bad_rules_name_the_task_and_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FeedbackError, match="feedback.labels.t") as err:
        parse_rule("t", text, EVENTS)
    assert message in str(err.value)


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400.0), ("30m", 1800.0), ("7d", 604800.0),
                                               ("90s", 90.0), (" 1.5h ", 5400.0), (600, 600.0)])
def test_windows_are_durations(text, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["24", "1w", "-1h", "0s", ""])
def test_a_bad_window_names_the_key(text: str) -> None:
    with pytest.raises(FeedbackError, match="feedback.window"):
        parse_window(text)


def test_the_section_checks_its_rules_and_event_names_when_loaded() -> None:
    ok = FeedbackConfig(events=EVENTS, labels={"click": "any(click)"})
    assert ok.window_seconds == 86400.0 and [r.column for r in ok.rules()] == ["click"]
    with pytest.raises(ValidationError, match="event 'like' is not declared"):
        FeedbackConfig(events=EVENTS, labels={"like": "any(like)"})
    with pytest.raises(ValidationError, match="event name 'a b'"):
        FeedbackConfig(events={"a b": "flag"}, labels={"click": "any(a b)"})
