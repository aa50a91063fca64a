"""A `POST /v1/feedback` body -> one Arrow record batch with FEEDBACK_SCHEMA (service/contract/feedback.py).

    {"events": [{"request_id": "r1", "item_id": "i7", "event": "click"},
                {"request_id": "r1", "item_id": "i7", "event": "watch_seconds", "value": 312.5,
                 "ts": "2026-12-07T12:00:03.250Z", "event_id": "e-81"}]}

msgspec decodes the bytes into typed structs in one pass (as /v1/rank's decoder does); the checks it
cannot make come after, against the served model's `feedback.events`: the name is declared, a `flag`
event carries no value, a `number` event a finite one. Every problem is a 422 naming
`events[i].field`; nothing of a refused batch is written.

`item_id` is a non-empty string or an integer, as in /v1/rank, and is stored as the string the
impression log stores for it (`category_key`: 42 -> "42"), so the join matches both logs on it.
`ts` is an ISO-8601 / RFC 3339 time with a timezone (`2026-12-07T12:00:03Z`, `...+01:00`); a time
without one is ambiguous and refused. Without `ts` an event gets the time the server received it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec
import pyarrow as pa

from service.contract.features import category_key
from service.contract.feedback import FEEDBACK_SCHEMA, FeedbackConfig
from service.contract.request import MAX_REQUEST_ID
from service.errors import FieldProblem, InvalidRequest, PayloadTooLarge

MAX_EVENT_ID = 128
MAX_PROBLEMS = 20  # problems listed in one 422 (the message names the first)
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REQUEST_ID)]
_ItemId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REQUEST_ID)] | int
_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


class Event(msgspec.Struct, forbid_unknown_fields=True):
    """One event as sent; unknown keys are refused (a misspelt `event_id` would lose idempotence unseen)."""

    request_id: _Id
    item_id: _ItemId
    event: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    value: float | None = None
    ts: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_EVENT_ID)] | None = None


class Body(msgspec.Struct, forbid_unknown_fields=True):
    events: list[Event]


@dataclass(frozen=True)
class Batch:
    """A checked batch: its events in order, as the columns of FEEDBACK_SCHEMA (ts in epoch ms, None = unset)."""

    request_id: list[str]
    item_id: list[str]
    event: list[str]
    value: list[float | None]
    ts: list[int | None]
    event_id: list[str | None]

    def __len__(self) -> int:
        return len(self.event)

    def record_batch(self, received_ms: int, keep: list[int] | None = None) -> pa.RecordBatch:
        """The rows `keep` (default all) as FEEDBACK_SCHEMA; an unset ts becomes `received_ms`."""
        rows = range(len(self)) if keep is None else keep
        columns = {
            "request_id": [self.request_id[i] for i in rows], "item_id": [self.item_id[i] for i in rows],
            "event": [self.event[i] for i in rows], "value": [self.value[i] for i in rows],
            "ts": [received_ms if self.ts[i] is None else self.ts[i] for i in rows],
            "event_id": [self.event_id[i] for i in rows],
        }
        arrays = [pa.array(columns[f.name], type=f.type) for f in FEEDBACK_SCHEMA]
        return pa.RecordBatch.from_arrays(arrays, schema=FEEDBACK_SCHEMA)


_DECODER = msgspec.json.Decoder(Body)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def parse_feedback(body: bytes, config: FeedbackConfig, max_events: int) -> Batch:
    """Bytes -> a checked Batch. InvalidRequest (422) names every bad field (up to MAX_PROBLEMS);
    PayloadTooLarge (413) when there are more than `max_events` events."""
    try:
        decoded = _DECODER.decode(body)
    except msgspec.ValidationError as e:
        raise _decode_error(str(e)) from None
    except msgspec.DecodeError as e:
        raise InvalidRequest.at("body", f"not valid JSON: {e}") from None
    events = decoded.events
    if not events:
        raise InvalidRequest.at("events", "at least one event is needed")
    if len(events) > max_events:
        raise PayloadTooLarge.at("events", f"{len(events):,} events is more than the limit of {max_events:,} per call")
    problems: list[FieldProblem] = []
    declared = config.events
    for i, e in enumerate(events):
        kind = declared.get(e.event)
        if kind is None:
            problems.append(FieldProblem(f"events[{i}].event", f"unknown event {e.event!r}; the model declares "
                                         f"{', '.join(sorted(declared))}"))
        elif kind == "flag" and e.value is not None:
            problems.append(FieldProblem(f"events[{i}].value", f"{e.event!r} is a flag event and takes no value"))
        elif kind == "number" and e.value is None:
            problems.append(FieldProblem(f"events[{i}].value", f"{e.event!r} is a number event and needs a value"))
        elif e.value is not None and not math.isfinite(e.value):
            problems.append(FieldProblem(f"events[{i}].value", f"{e.value} is not a finite number"))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        first = problems[0]
        raise InvalidRequest(f"{first.field}: {first.message}", problems)
    return Batch(
        request_id=[e.request_id for e in events],
        item_id=[e.item_id if isinstance(e.item_id, str) else category_key(e.item_id) for e in events],
        event=[e.event for e in events], value=[e.value for e in events],
        ts=[None if e.ts is None else _epoch_ms(e.ts) for e in events],
        event_id=[e.event_id for e in events])


def _epoch_ms(ts: datetime) -> int:
    return (ts - _EPOCH) // _MS  # exact integer arithmetic; sub-millisecond digits are cut (timestamp[ms])


def _decode_error(message: str) -> InvalidRequest:
    """msgspec's `Expected `str`, got `int` - at `$.events[0].request_id`` -> a 422 naming `events[0].request_id`."""
    m = _PATH.search(message)
    field = m["path"] if m and m["path"] else "body"
    text = message[:m.start()] if m else message
    if "unknown field" in text:  # `Object contains unknown field `x`` at the object: name the field itself
        unknown = re.search(r"unknown field `([^`]*)`", text)
        if unknown:
            field = f"{field}.{unknown[1]}" if field != "body" else unknown[1]
    if text.startswith("Object missing required field"):
        missing = re.search(r"field `([^`]*)`", text)
        if missing:
            field = f"{field}.{missing[1]}" if field != "body" else missing[1]
    if field.endswith(".ts"):
        text += " (an ISO-8601 time with a timezone, e.g. 2026-12-07T12:00:03Z)"
    return InvalidRequest.at(field, text)
