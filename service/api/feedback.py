"""POST /v1/feedback: the frontend's events about ranked items, answered 200 only once durable.

The events and their types are the served model's (its manifest's `feedback.events`, from the spec);
the batch is written by service/feedback/log.py before the answer. docs/OPERATIONS.md, "Feedback".
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from service.api.deps import RuntimeDep, read_body
from service.errors import (
    FeedbackOff,
    FeedbackWriteFailed,
    NotReady,
    PayloadTooLarge,
    RankerError,
    Unauthorized,
)
from service.live.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["feedback"])


class FeedbackResponse(BaseModel):
    accepted: int = Field(description="events written, durably (fsynced on disk or in the object store's spool)")
    duplicates: int = Field(description="events skipped: an event with the same event_id was written before")


EXAMPLE = {"events": [
    {"request_id": "r-1", "item_id": "i7", "event": "click", "ts": "2026-12-07T12:00:03Z", "event_id": "e-1"},
    {"request_id": "r-1", "item_id": "i7", "event": "watch_seconds", "value": 312.5, "event_id": "e-2"},
]}
EVENT_SCHEMA = {"type": "object", "required": ["request_id", "item_id", "event"], "additionalProperties": False,
                "properties": {
                    "request_id": {"type": "string", "minLength": 1, "maxLength": 128,
                                   "description": "the ranked response's request_id"},
                    "item_id": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}],
                                "description": "the ranked item, as sent to /v1/rank (stored as a string)"},
                    "event": {"type": "string", "description": "an event the served model declares"},
                    "value": {"type": ["number", "null"], "description": "for `number` events (finite); "
                              "none for `flag` events"},
                    "ts": {"type": ["string", "null"], "format": "date-time", "description": "ISO-8601 with a "
                           "timezone; default: the time the server received the batch"},
                    "event_id": {"type": ["string", "null"], "maxLength": 128, "description": "unique per event: "
                                 "a retried batch's events with known ids are skipped"}}}
REQUEST_BODY_DOC = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "required": ["events"], "additionalProperties": False,
               "properties": {"events": {"type": "array", "minItems": 1, "items": EVENT_SCHEMA}}},
    "example": EXAMPLE}}}}


@router.post("/feedback", response_model=FeedbackResponse, openapi_extra=REQUEST_BODY_DOC,
             responses={401: {"description": "RANKER_FEEDBACK_TOKEN is set and the bearer token is missing or wrong"},
                        409: {"description": "feedback is off (no RANKER_LOG_DIR) or the model declares no events"},
                        413: {"description": "too many events or too large a body"},
                        422: {"description": "invalid events; `error.fields` names each one"},
                        503: {"description": "no model loaded yet, or the batch could not be made durable: retry"}})
async def feedback(request: Request, runtime: RuntimeDep,
                   authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> FeedbackResponse:
    """Take a batch of events; the 200 means every accepted event is durable."""
    metrics = runtime.feedback_metrics
    try:
        _authorize(runtime, authorization)
        if runtime.feedback is None:  # before the body is read: the same answer take_feedback would give
            raise FeedbackOff("feedback is off on this server: RANKER_LOG_DIR (the log destination) is not set")
        model = runtime.state.model
        if model is None:
            raise NotReady(runtime.not_ready_reason())
        config = model.manifest.feedback
        if config is None:
            raise FeedbackOff(f"model {model.manifest.model_name} version {model.version} declares no feedback "
                              "events (its spec has no `feedback:` section)")
        body = await read_body(request, runtime.settings.feedback_max_body_bytes)
        appended = await runtime.take_feedback(body, config)
    except RankerError as e:
        if metrics is not None:
            metrics.rejected.labels(reason=_reason(e)).inc()
        raise
    if metrics is not None:
        metrics.written(appended.events, config.events)
        metrics.duplicates.inc(appended.duplicates)
    return FeedbackResponse(accepted=appended.accepted, duplicates=appended.duplicates)


def _authorize(runtime: Runtime, authorization: str | None) -> None:
    token = runtime.settings.feedback_token
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             token.get_secret_value().encode()):
        raise Unauthorized("POST /v1/feedback needs 'Authorization: Bearer <token>' with RANKER_FEEDBACK_TOKEN")


def _reason(error: RankerError) -> str:
    if isinstance(error, Unauthorized):
        return "unauthorized"
    if isinstance(error, PayloadTooLarge):
        return "too_large"
    if isinstance(error, FeedbackOff):
        return "not_declared"
    if isinstance(error, NotReady):
        return "not_ready"
    if isinstance(error, FeedbackWriteFailed):
        return "write_failed"
    return "invalid"  # InvalidRequest (422), and anything else a 4xx of this route
