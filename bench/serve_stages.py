"""In-process timings for bench/serve_latency.py: raw session.run and each stage of the request path."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import orjson
from http_load import LoadResult

from service.bundle import SessionConfig, load_bundle
from service.ranking import rank
from service.request import RequestParser
from service.scorer import OnnxRankingModel
from service.scoring import compile_weights, parse_weights
from service.state import Serving


def load_serving(bundle: Path, weights: Path, max_candidates: int = 100_000) -> Serving:
    loaded = load_bundle(bundle, SessionConfig())
    model = OnnxRankingModel(version=1, bundle=loaded, parser=RequestParser(loaded.manifest.features, max_candidates))
    return Serving(model, compile_weights(parse_weights(weights.read_bytes()), model.tasks))


def raw_session_run(serving: Serving, body: bytes, count: int, max_seconds: float) -> LoadResult:
    """session.run alone on the request's pre-encoded inputs (same SessionOptions as the server)."""
    inputs = serving.model.encode(serving.model.parse(body))
    names, session = serving.model.bundle.output_names, serving.model.bundle.session
    for _ in range(20):
        session.run(names, inputs)
    result, start = LoadResult(), time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        session.run(names, inputs)
        result.latencies.append(time.perf_counter() - t0)
        if time.perf_counter() - start > max_seconds:
            break
    result.seconds = sum(result.latencies)
    return result


def stage_breakdown(serving: Serving, request: dict, iterations: int, profile: bool = False) -> dict:
    """Median seconds of each stage of `service.ranking.rank` for one request body."""
    model = serving.model
    body = orjson.dumps(request)
    parts: dict[str, list[float]] = {k: [] for k in (
        "parse + validate (pydantic-core over the bytes)", "encode (service.features, numpy)",
        "session.run (all heads)", "combine + sort + build response (numpy, orjson)")}
    totals = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        req = model.parse(body)
        t1 = time.perf_counter()
        inputs = model.encode(req)
        t2 = time.perf_counter()
        model.predict(inputs)
        t3 = time.perf_counter()
        for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2), strict=False):
            parts[name].append(seconds)
        t4 = time.perf_counter()
        rank(serving, body)
        totals.append(time.perf_counter() - t4)
    medians = {k: statistics.median(v) for k, v in parts.items() if v}
    total = statistics.median(totals)
    # The last stage is what rank() spends beyond the first three (profile lookup, combine, sort, orjson).
    medians["combine + sort + build response (numpy, orjson)"] = max(0.0, total - sum(medians.values()))
    if profile:
        _profile(serving, body, iterations)
    return {"parts": medians, "total": total, "iterations": iterations}


def _profile(serving: Serving, body: bytes, iterations: int) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0001)
    with profiler:
        for _ in range(iterations):
            rank(serving, body)
    print(profiler.output_text(unicode=False, color=False, show_all=False))
