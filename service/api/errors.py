"""Domain errors -> HTTP, in one place.

Every error body has the same shape:
    {"error": {"code": "invalid_request", "message": "...", "fields": [{"field": ..., "message": ...}]}}
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.contract.request import field_path
from service.errors import (
    Conflict,
    FeatureStoreUnavailable,
    FieldProblem,
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
    NotReady: 503,
    Overloaded: 503,
    FeatureStoreUnavailable: 503,
}


def status_of(error: RankerError) -> int:
    return STATUS.get(type(error), 500)


def error_response(error: RankerError, retry_after: int) -> JSONResponse:
    status = status_of(error)
    body = {"error": {"code": error.code, "message": error.message,
                      "fields": [{"field": p.field, "message": p.message} for p in error.problems]}}
    headers = {}
    if status == 503:
        headers["Retry-After"] = str(retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, retry_after: int) -> None:
    async def on_ranker_error(request: Request, error: RankerError) -> JSONResponse:
        return error_response(error, retry_after)

    async def on_validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        # Query and header parameters of the small routes; /v1/rank validates its body itself.
        problems = [FieldProblem(field_path(tuple(e["loc"])), e["msg"]) for e in error.errors()]
        first = problems[0] if problems else FieldProblem("request", "invalid")
        return error_response(InvalidRequest(f"{first.field}: {first.message}", problems), retry_after)

    app.add_exception_handler(RankerError, on_ranker_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
