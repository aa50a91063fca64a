"""The ranking path of one request, from raw bytes to response bytes (runs in a worker thread).

    parse + validate (msgspec over the bytes, candidates into columns; pydantic names a bad field;
    fields the model does not read noted)
    ->  fill features left out (service.feature_store)  ->  encode (service.contract.features, numpy;
    missing features counted or refused)  ->  session.run (all heads)  ->  combine (weights profile,
    numpy)  ->  refuse non-finite scores  ->  sort, top-k  ->  msgspec  ->  queued for the impression log

A canary (ServingState's `Serving.canary`) takes the requests whose user key its record takes: they are
parsed again with the canary model's own schema (its features may differ; the other requests pay
nothing) and scored by it. A shadow scores every request after the response is sent (`shadow_rank`,
run by the route as a background task), and only its impression rows record what it would have served.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from service.contract.request import RankRequest, check_header_request_id
from service.errors import InvalidRequest, ModelOutputError
from service.live.model import RankingModel
from service.live.response import response_body, top_k_order
from service.live.state import Canary, Serving
from service.metrics import RankerMetrics
from service.profiles import CompiledProfile, CompiledWeights
from service.tracing import RequestTrace, stage

if TYPE_CHECKING:
    from service.feature_store.lookup import FeatureLookup, Filled
    from service.impressions.writer import ImpressionLog

Role = str  # "current" | "canary" | "shadow": which model scored (response, impression log, metrics)


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
    model_role: Role = "current"
    shadow: Canary | None = None  # a shadow to score this request after the response (shadow_rank)


@dataclass(frozen=True)
class Scored:
    """One request scored by one model: what the response, the log and the metrics read."""

    request: RankRequest
    profile: CompiledProfile
    arm: str | None
    filled: Filled | None
    heads: dict[str, np.ndarray]  # {task: (B,)}
    scores: np.ndarray  # (B,)
    parts: dict[str, np.ndarray] | None
    order: np.ndarray  # (k,)
    inference: float


def rank(serving: Serving, raw: bytes, metrics: RankerMetrics | None = None,
         header_request_id: str | None = None, lookup: FeatureLookup | None = None,
         impressions: ImpressionLog | None = None, trace: RequestTrace | None = None) -> Ranked:
    """Score and sort one request with one (model, weights) pair, or the canary's. Raises RankerError
    subclasses. With `impressions`, the response is also queued for the impression log (references, no I/O);
    with `trace`, each stage is a child span of the request's (service/tracing.py)."""
    model, weights, role = serving.model, serving.weights, "current"
    header_id = check_header_request_id(header_request_id)
    canary = serving.canary
    with stage(trace, "parse"):
        request = model.parse(raw)
        if (canary is not None and canary.record.mode == "canary"
                and canary.record.takes(user_key(weights, request.user))):
            model, weights, role = canary.model, canary.weights, "canary"
            request = model.parse(raw)  # the canary's own schema
    try:
        s = score(model, weights, request, lookup, trace)
    except ModelOutputError:
        if metrics is not None:
            metrics.non_finite_scores.inc()
        raise
    request_id = request.request_id or header_id or uuid.uuid4().hex
    header = {"request_id": request_id, "model_version": model.version, "model_role": role,
              "profile": s.profile.name, "arm": s.arm, "weights_generation": weights.generation}
    if s.filled is not None:
        header["lookup"] = s.filled.summary
    with stage(trace, "respond"):
        body = response_body(header, request.item_ids, s.scores, s.heads, s.order, s.parts, request.scores)
    if impressions is not None:
        impressions.offer(request_id, model, weights, s.profile.name, s.arm, request, s.scores, s.heads, s.order,
                          role)
    if metrics is not None:
        observe(metrics, s, weights, role)
    return Ranked(body=body, request_id=request_id, profile=s.profile.name, arm=s.arm, model_version=model.version,
                  weights_generation=weights.generation, candidates=len(request.item_ids),
                  inference_seconds=s.inference, model_role=role,
                  shadow=canary if canary is not None and canary.record.mode == "shadow" else None)


def shadow_rank(shadow: Canary, raw: bytes, request_id: str, metrics: RankerMetrics | None = None,
                lookup: FeatureLookup | None = None, impressions: ImpressionLog | None = None) -> None:
    """Score an answered request with the shadow model: only the impression log (model_role "shadow", the
    positions it would have given) and ranker_model_requests_total{role="shadow"} see it. Raises RankerError."""
    request = shadow.model.parse(raw)
    s = score(shadow.model, shadow.weights, request, lookup)
    if impressions is not None:
        impressions.offer(request_id, shadow.model, shadow.weights, s.profile.name, s.arm, request, s.scores,
                          s.heads, s.order, "shadow")
    if metrics is not None:
        metrics.model_requests.labels(role="shadow").inc()


def score(model: RankingModel, weights: CompiledWeights, request: RankRequest,
          lookup: FeatureLookup | None, trace: RequestTrace | None = None) -> Scored:
    """profile -> feature store -> encode -> session.run -> combine -> finite? -> top-k order."""
    profile, arm = weights.choose(request.profile, request.user)
    if profile is None:
        raise InvalidRequest.at("profile", f"unknown profile {request.profile!r}; profiles are "
                                           f"{sorted(weights.profiles)}")
    with stage(trace, "lookup"):
        filled = lookup.fill(model.manifest, request) if lookup is not None else None  # feature store
    with stage(trace, "encode"):
        inputs = model.encode(request, filled)  # counts defaulted and clipped values, or refuses (on_missing: error)
    with stage(trace, "session.run"):
        t0 = time.perf_counter()
        heads = model.predict(inputs)  # {task: (B,)}
        inference = time.perf_counter() - t0
    with stage(trace, "combine"):
        # Explanations cost nothing unless asked for: `combine` is the whole scoring step otherwise.
        scores, parts = profile.explain(heads) if request.explain else (profile.combine(heads), None)  # (B,)
        require_finite(scores, heads)
        order = top_k_order(scores, request.top_k)  # (k,)
    return Scored(request, profile, arm, filled, heads, scores, parts, order, inference)


def observe(metrics: RankerMetrics, s: Scored, weights: CompiledWeights, role: Role) -> None:
    request = s.request
    metrics.inference_duration.observe(s.inference)
    metrics.candidates.observe(len(request.item_ids))
    metrics.head_score.observe(s.heads)
    metrics.observe_defaulted(request.defaulted)
    metrics.observe_clipped(request.clipped)
    metrics.model_requests.labels(role=role).inc()
    if request.unknown:
        metrics.observe_unknown(unknown_fields(request, weights))


def user_key(weights: CompiledWeights, user: dict) -> object:
    """The user key's value: the experiment's key field (default user_id), as the impression log's user_key."""
    experiments = weights.weights.file.experiments
    return user.get(experiments.key if experiments is not None else "user_id")


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


__all__ = ["Ranked", "Scored", "rank", "require_finite", "response_body", "score", "shadow_rank", "top_k_order",
           "unknown_fields", "user_key"]
