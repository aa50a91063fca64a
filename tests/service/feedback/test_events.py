"""Parsing a POST /v1/feedback body against the served model's declared events: every problem is a
422 (or 413) naming the field, and a good batch becomes FEEDBACK_SCHEMA's columns exactly."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from service.contract.feedback import FEEDBACK_SCHEMA, FeedbackConfig
from service.errors import InvalidRequest, PayloadTooLarge
from service.feedback.events import parse_feedback

CONFIG = FeedbackConfig(events={"click": "flag", "watch_seconds": "number"},
                        labels={"click": "any(click)", "watch_time": "sum(watch_seconds) if click else null"})


def body(*events: dict) -> bytes:
    return orjson.dumps({"events": list(events)})


def event(**fields) -> dict:
    return {"request_id": "r1", "item_id": "i7", "event": "click", **fields}


def refused(raw: bytes, max_events: int = 100) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as e:
        parse_feedback(raw, CONFIG, max_events)
    return e.value


def test_a_good_batch_becomes_the_schema_s_columns() -> None:
    batch = parse_feedback(body(event(ts="2026-12-07T12:00:03.250+01:00", event_id="e1"),
                                event(item_id=42, event="watch_seconds", value=312.5)), CONFIG, 100)
    rows = batch.record_batch(received_ms=1_000).to_pylist()
    assert batch.record_batch(0).schema == FEEDBACK_SCHEMA
    assert rows[0] == {"request_id": "r1", "item_id": "i7", "event": "click", "value": None,
                       "ts": datetime(2026, 12, 7, 11, 0, 3, 250000, tzinfo=UTC), "event_id": "e1"}
    # An integer item id is stored as the impression log stores it (category_key): the join matches strings.
    assert rows[1]["item_id"] == "42" and rows[1]["value"] == 312.5 and rows[1]["event_id"] is None
    assert rows[1]["ts"] == datetime.fromtimestamp(1.0, UTC)  # no ts: the time the server received it


def test_an_integer_value_is_a_number() -> None:
    assert parse_feedback(body(event(event="watch_seconds", value=3)), CONFIG, 10).value == [3.0]


@pytest.mark.parametrize(("events", "field", "words"), [
    ([event(event="clack")], "events[0].event", "unknown event 'clack'; the model declares click, watch_seconds"),
    ([event(), event(value=1.0)], "events[1].value", "'click' is a flag event and takes no value"),
    ([event(event="watch_seconds")], "events[0].value", "'watch_seconds' is a number event and needs a value"),
    ([event(event="watch_seconds", value="3")], "events[0].value", "Expected `float | null`, got `str`"),
    ([event(event="watch_seconds", value=True)], "events[0].value", "got `bool`"),
    ([{"item_id": "i7", "event": "click"}], "events[0].request_id", "missing required field"),
    ([{"request_id": "r", "event": "click"}], "events[0].item_id", "missing required field"),
    ([{"request_id": "r", "item_id": "i"}], "events[0].event", "missing required field"),
    ([event(item_id=True)], "events[0].item_id", "got `bool`"),
    ([event(item_id="")], "events[0].item_id", ""),
    ([event(item_id=1.5)], "events[0].item_id", "got `float`"),
    ([event(request_id="")], "events[0].request_id", "length"),
    ([event(ts="2026-12-07T12:00:03")], "events[0].ts", "timezone"),
    ([event(ts=1796641203250)], "events[0].ts", "ISO-8601"),
    ([event(ts="yesterday")], "events[0].ts", ""),
    ([event(event_id=7)], "events[0].event_id", "got `int`"),
    ([event(evnet_id="e1")], "events[0].evnet_id", "unknown field"),
    ([], "events", "at least one event"),
])
def test_each_problem_is_a_422_naming_its_field(events: list[dict], field: str, words: str) -> None:
    error = refused(body(*events))
    assert error.problems[0].field == field, error.message
    assert words in error.message
    assert error.message.startswith(field)


def test_non_finite_values_are_refused() -> None:
    # JSON has no NaN or Infinity; a number too large for a float64 is the way to send one.
    error = refused(b'{"events": [{"request_id": "r", "item_id": "i", "event": "watch_seconds", "value": 1e999}]}')
    assert error.problems[0].field == "events[0].value"


def test_every_bad_event_is_listed() -> None:
    error = refused(body(event(event="clack"), event(), event(event="watch_seconds")))
    assert [p.field for p in error.problems] == ["events[0].event", "events[2].value"]


@pytest.mark.parametrize(("raw", "field"), [(b"{not json", "body"), (b"[]", "body"), (b'{"evts": []}', "evts"),
                                            (b'{"events": {}}', "events")])
def test_a_body_that_is_not_a_batch_is_a_422(raw: bytes, field: str) -> None:
    assert refused(raw).problems[0].field == field


def test_too_many_events_is_a_413() -> None:
    with pytest.raises(PayloadTooLarge, match="3 events is more than the limit of 2"):
        parse_feedback(body(event(), event(), event()), CONFIG, 2)
