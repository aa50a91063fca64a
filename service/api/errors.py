"""Domain errors -> HTTP, in one place.

Every error body has the same shape:
    {"error": {"code": "invalid_request", "message": "...", "fields": [{"field": ..., "message": ...}]}}

A 500 is a fault of the server or the model, so its exception (with the cause it wraps) is logged
here, once; /v1/rank turns any unexpected exception into an InternalError for that reason. A 503
(overloaded, not ready, feature store down) is an answer by design: its message is in the access
log, and the feature store logs its own failures. An unexpected exception in another route gets
the same JSON body from `on_unexpected`; Starlette re-raises it afterwards and uvicorn logs it,
so it is not logged here.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.contract.request import MAX_REQUEST_ID, field_path
from service.errors import (
    Conflict,
    FeatureStoreUnavailable,
    FeedbackOff,
    FeedbackWriteFailed,
    FieldProblem,
    InternalError,
    InvalidRequest,
    ModelOutputError,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    RankerError,
    Unauthorized,
)

log = logging.getLogger(__name__)

STATUS: dict[type[RankerError], int] = {
    InvalidRequest: 422,
    PayloadTooLarge: 413,
    Unauthorized: 401,
    NotFound: 404,
    Conflict: 409,
    ModelOutputError: 500,
    InternalError: 500,
    NotReady: 503,
    Overloaded: 503,
    FeatureStoreUnavailable: 503,
    FeedbackOff: 409,
    FeedbackWriteFailed: 503,
}


def status_of(error: RankerError) -> int:
    return STATUS.get(type(error), 500)


def error_response(error: RankerError, retry_after: int, traceparent: str | None = None) -> JSONResponse:
    status = status_of(error)
    body = {"error": {"code": error.code, "message": error.message,
                      "fields": [{"field": p.field, "message": p.message} for p in error.problems]}}
    headers = {"traceparent": traceparent} if traceparent is not None else {}
    if status == 503:
        headers["Retry-After"] = str(retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, retry_after: int) -> None:
    async def on_ranker_error(request: Request, error: RankerError) -> JSONResponse:
        if status_of(error) == 500:
            header_id = request.headers.get("x-request-id")
            log.error("%s: %s", error.code, error.message, exc_info=error, extra={
                "path": request.url.path, "request_id": header_id[:MAX_REQUEST_ID] if header_id else None})
        # /v1/rank's trace (service/tracing.py), so a refused request can be found among the traces.
        return error_response(error, retry_after, getattr(request.state, "traceparent", None))

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        return error_response(InternalError(f"internal error ({type(error).__name__})"), retry_after)

    async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        # Query and header parameters of the small routes; /v1/rank validates its body itself.
        problems = [FieldProblem(field_path(tuple(e["loc"])), e["msg"]) for e in error.errors()]
        first = problems[0] if problems else FieldProblem("request", "invalid")
        return error_response(InvalidRequest(f"{first.field}: {first.message}", problems), retry_after)

    app.add_exception_handler(RankerError, on_ranker_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
