"""Domain errors of the ranking path. service/api/errors.py maps them to HTTP in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with a request: where (e.g. `candidates[3].item_popularity`) and what."""

    field: str
    message: str


class RankerError(Exception):
    """Base of the errors a request can end in; `problems` name the fields at fault."""

    code = "error"

    def __init__(self, message: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class InvalidRequest(RankerError):
    """The body is not a valid ranking request (malformed JSON, wrong types, unknown profile...)."""

    code = "invalid_request"

    @classmethod
    def at(cls, field: str, message: str) -> InvalidRequest:
        return cls(f"{field}: {message}", [FieldProblem(field, message)])


class PayloadTooLarge(RankerError):
    """Too many candidates or too many bytes."""

    code = "payload_too_large"

    @classmethod
    def at(cls, field: str, message: str) -> PayloadTooLarge:
        return cls(f"{field}: {message}", [FieldProblem(field, message)])


class ModelOutputError(RankerError):
    """The model scored a request with a non-finite value: a fault of the model, never sent as a score."""

    code = "non_finite_score"


class InternalError(RankerError):
    """Anything else that went wrong answering a request: a bug, answered as a 500 and logged with its cause."""

    code = "internal_error"


class NotReady(RankerError):
    """No verified model with valid weights is loaded yet."""

    code = "not_ready"


class Overloaded(RankerError):
    """More requests in flight than the server admits; the client should retry shortly."""

    code = "overloaded"


class NotFound(RankerError):
    """An admin operation named something that does not exist (e.g. a model version)."""

    code = "not_found"


class Conflict(RankerError):
    """An admin operation that cannot be done in the current state (e.g. a refused bundle)."""

    code = "conflict"


class Unauthorized(RankerError):
    """An admin call without the right bearer token."""

    code = "unauthorized"


class FeatureStoreUnavailable(RankerError):
    """The feature store failed (outage, timeout) and the server is configured to fail closed."""

    code = "feature_store_unavailable"


class FeedbackOff(RankerError):
    """`POST /v1/feedback` cannot take events here: the log is off, or the served model declares no events."""

    code = "feedback_off"


class FeedbackWriteFailed(RankerError):
    """A feedback batch could not be made durable (disk full, unwritable directory): 503, the client retries."""

    code = "feedback_write_failed"
