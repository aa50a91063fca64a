"""POST /v1/rank: score and sort one user's candidates."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from service.api.deps import RuntimeDep, read_body
from service.api.errors import status_of
from service.contract.request import MAX_REQUEST_ID, request_json_schema
from service.errors import InternalError, RankerError
from service.live.pipeline import Ranked

log = logging.getLogger("service.access")
router = APIRouter(prefix="/v1", tags=["rank"])


class RankedItem(BaseModel):
    item_id: str | int
    score: float
    rank: int
    scores: dict[str, float] | None = Field(None, description=(
        "each task head's output in natural units; left out with `\"scores\": false`"))
    contributions: dict[str, float] | None = Field(None, description=(
        "only with `\"explain\": true`: per task of the profile, weight x transform(head) plus the "
        "transform's offset; they add up to `score`"))


class LookupSummary(BaseModel):
    not_found: int = Field(description="ids of this entity not found in the feature store (model defaults used)")
    store_error: bool = Field(False, description="the store failed; request values and defaults were used")


class RankResponse(BaseModel):
    request_id: str
    model_version: int = Field(description="the model version that scored this request")
    model_role: str = Field(description=(
        "'current' (the registry's CURRENT) or 'canary' (the canary version serving a share of users, "
        "`ranker registry canary`)"))
    profile: str
    arm: str | None = Field(description=(
        "experiment arm (weights.yaml `experiments`): a profile name, 'control' (the default profile), or "
        "null when the request named its profile or there is no experiment"))
    weights_generation: int
    lookup: dict[str, LookupSummary] | None = Field(
        None, description="per entity (item, user), when the model looks features up by id")
    items: list[RankedItem]


# The body is read as raw bytes and validated per model (service.contract.request), so FastAPI cannot
# infer it; its documentation comes from the same schema builder, without a model's feature names.
ID_ONLY_EXAMPLE = {"user": {"user_id": "u42"}, "context": {"device": "tv", "hour": 20},
                   "candidates": [{"item_id": "i7"}, {"item_id": "i9"}, {"item_id": "brand-new-item"}], "top_k": 2}
FULL_EXAMPLE = {"user": {"user_id": "u42", "user_activity": 3.5}, "context": {"device": "tv", "hour": 20},
                "candidates": [{"item_id": "i7", "item_category": "c3", "item_popularity": 12.0},
                               {"item_id": "i9", "item_popularity": 2.5}],
                "profile": "satisfaction_first"}
REQUEST_BODY_DOC = {
    "requestBody": {"required": True, "content": {"application/json": {
        "schema": request_json_schema(),
        "examples": {
            "ids_only": {"summary": "ids only: item and user features come from the feature store",
                         "value": ID_ONLY_EXAMPLE},
            "with_features": {"summary": "features inline: they override the stored ones", "value": FULL_EXAMPLE},
        }}}}
}


@router.post("/rank", response_model=RankResponse, openapi_extra=REQUEST_BODY_DOC,
             responses={413: {"description": "too many candidates or too large a body"},
                        422: {"description": "invalid request; `error.fields` names the fields"},
                        503: {"description": "no model loaded yet, or overloaded (see Retry-After)"}})
async def rank(request: Request, runtime: RuntimeDep) -> Response:
    """Rank the candidates by the profile's weighted combination of the task heads."""
    start = time.perf_counter()
    status, ranked, error = 500, None, None
    trace = runtime.tracing.start_request(request.headers, request.url.path) if runtime.tracing is not None else None
    headers: dict[str, str] = {}
    if trace is not None and (traceparent := trace.traceparent()) is not None:
        headers["traceparent"] = request.state.traceparent = traceparent  # error responses carry it too
    try:
        with runtime.admit():
            serving = runtime.serving()
            body = await read_body(request, runtime.settings.max_body_bytes)
            ranked = await runtime.rank(serving, body, request.headers.get("x-request-id"), trace)
        status = 200
        # A shadow scores the request after the response is sent: its cost never delays this answer.
        shadow = (BackgroundTask(runtime.shadow, ranked.shadow, body, ranked.request_id)
                  if ranked.shadow is not None else None)
        headers["X-Request-ID"] = ranked.request_id
        return Response(ranked.body, media_type="application/json", headers=headers, background=shadow)
    except RankerError as e:
        status, error = status_of(e), e.message
        raise
    except Exception as e:  # a bug: answered and logged as a 500 where every domain error is (api/errors.py)
        internal = InternalError(f"internal error ({type(e).__name__}); the server log has the traceback")
        status, error = 500, internal.message
        raise internal from e
    finally:
        header_id = request.headers.get("x-request-id")
        _record(runtime, start, status, ranked, error, header_id)
        if trace is not None:
            trace.finish(status, ranked, error, header_id[:MAX_REQUEST_ID] if header_id else None)


def _record(runtime: RuntimeDep, start: float, status: int, ranked: Ranked | None, error: str | None,
            header_id: str | None) -> None:
    seconds = time.perf_counter() - start
    # Only profiles that exist become label values: an unknown one in a request must not add series.
    profile = ranked.profile if ranked is not None else ""
    runtime.metrics.observe_request(profile, status, seconds, ranked.arm if ranked is not None else None)
    extra: dict[str, Any] = {"status": status, "latency_ms": round(seconds * 1000, 3)}
    if ranked is not None:
        extra.update(request_id=ranked.request_id, candidates=ranked.candidates, model_version=ranked.model_version,
                     model_role=ranked.model_role, profile=ranked.profile, arm=ranked.arm, weights_generation=ranked.weights_generation,
                     inference_ms=round(ranked.inference_seconds * 1000, 3))
    else:
        # An over-long header is refused (422); the log keeps only its bounded prefix.
        extra.update(request_id=header_id[:MAX_REQUEST_ID] if header_id else None, error=error)
    log.info("rank", extra=extra)
