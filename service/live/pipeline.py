"""The ranking path of one request, from raw bytes to response bytes (runs in a worker thread).

    parse + validate (msgspec over the bytes, candidates into columns; pydantic names a bad field;
    fields the model does not read noted)
    ->  fill features left out (service.feature_store)  ->  encode (service.contract.features, numpy;
    missing features counted or refused)  ->  session.run (all heads)  ->  combine (weights profile,
    numpy)  ->  refuse non-finite scores  ->  sort, top-k  ->  msgspec  ->  queued for the impression log
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from service.contract.request import RankRequest, check_header_request_id
from service.errors import InvalidRequest, ModelOutputError
from service.live.response import response_body, top_k_order
from service.live.state import Serving
from service.metrics import RankerMetrics
from service.profiles import CompiledWeights

if TYPE_CHECKING:
    from service.feature_store.lookup import FeatureLookup
    from service.impressions.writer import ImpressionLog


@dataclass(frozen=True)
class Ranked:
    """A finished request: the response body and what the access log and metrics need."""

    body: bytes
    request_id: str
    profile: str
    arm: str | None  # experiment arm (service/experiments.py); None when the request bypassed it
    model_version: int
    weights_generation: int
    candidates: int
    inference_seconds: float


def rank(serving: Serving, raw: bytes, metrics: RankerMetrics | None = None,
         header_request_id: str | None = None, lookup: FeatureLookup | None = None,
         impressions: ImpressionLog | None = None) -> Ranked:
    """Score and sort one request with one (model, weights) pair. Raises RankerError subclasses.
    With `impressions`, the response is also queued for the impression log (references, no I/O)."""
    model, weights = serving.model, serving.weights
    header_id = check_header_request_id(header_request_id)
    request = model.parse(raw)
    profile, arm = weights.choose(request.profile, request.user)
    if profile is None:
        raise InvalidRequest.at("profile", f"unknown profile {request.profile!r}; profiles are "
                                           f"{sorted(weights.profiles)}")
    filled = lookup.fill(model.manifest, request) if lookup is not None else None  # feature store
    inputs = model.encode(request, filled)  # counts defaulted and clipped values, or refuses (on_missing: error)
    t0 = time.perf_counter()
    heads = model.predict(inputs)  # {task: (B,)}
    inference = time.perf_counter() - t0
    # Explanations cost nothing unless asked for: `combine` is the whole scoring step otherwise.
    scores, parts = profile.explain(heads) if request.explain else (profile.combine(heads), None)  # (B,)
    try:
        require_finite(scores, heads)
    except ModelOutputError:
        if metrics is not None:
            metrics.non_finite_scores.inc()
        raise
    order = top_k_order(scores, request.top_k)
    request_id = request.request_id or header_id or uuid.uuid4().hex
    header = {"request_id": request_id, "model_version": model.version, "profile": profile.name, "arm": arm,
              "weights_generation": weights.generation}
    if filled is not None:
        header["lookup"] = filled.summary
    body = response_body(header, request.item_ids, scores, heads, order, parts, request.scores)
    if impressions is not None:
        impressions.offer(request_id, model, weights, profile.name, arm, request, scores, heads, order)
    if metrics is not None:
        metrics.inference_duration.observe(inference)
        metrics.candidates.observe(len(request.item_ids))
        metrics.head_score.observe(heads)
        metrics.observe_defaulted(request.defaulted)
        metrics.observe_clipped(request.clipped)
        if request.unknown:
            metrics.observe_unknown(unknown_fields(request, weights))
    return Ranked(body=body, request_id=request_id, profile=profile.name, arm=arm, model_version=model.version,
                  weights_generation=weights.generation, candidates=len(request.item_ids),
                  inference_seconds=inference)


def unknown_fields(request: RankRequest, weights: CompiledWeights) -> list[str]:
    """The request's unknown fields but the experiment's user key, which the weights read, not the model."""
    experiments = weights.weights.file.experiments
    key = f"user.{experiments.key}" if experiments is not None else None
    return [name for name in request.unknown if name != key]


def require_finite(scores: np.ndarray, heads: dict[str, np.ndarray]) -> None:
    """Raise ModelOutputError (500) rather than answer with a NaN or infinite score (JSON null)."""
    if np.isfinite(scores).all() and all(np.isfinite(h).all() for h in heads.values()):
        return
    bad = [t for t, h in heads.items() if not np.isfinite(h).all()] or ["(combined score)"]
    raise ModelOutputError(f"the model produced a non-finite score ({', '.join(bad)}) for "
                           f"{int((~np.isfinite(scores)).sum())} of {len(scores)} candidates")


__all__ = ["Ranked", "rank", "require_finite", "response_body", "top_k_order", "unknown_fields"]
