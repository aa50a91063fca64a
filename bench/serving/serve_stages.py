"""In-process timings for bench/serving/serve_latency.py: raw session.run and each stage of the request path."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from bench.serving.http_load import LoadResult
from service.contract.bundle import SessionConfig, load_bundle
from service.contract.request import RequestParser
from service.live.model import OnnxRankingModel
from service.live.pipeline import rank, response_body, top_k_order
from service.live.state import Serving
from service.profiles import compile_weights, parse_weights


def load_serving(bundle: Path, weights: Path, max_candidates: int = 100_000) -> Serving:
    loaded = load_bundle(bundle, SessionConfig())
    model = OnnxRankingModel(version=1, bundle=loaded, parser=RequestParser(loaded.manifest.features, max_candidates))
    return Serving(model, compile_weights(parse_weights(weights.read_bytes()), model.tasks))


def raw_session_run(serving: Serving, body: bytes, count: int, max_seconds: float) -> tuple[LoadResult, LoadResult]:
    """session.run alone on the request's pre-encoded inputs (same SessionOptions as the server):
    back to back, then evenly spaced at 70% of that rate (the machine's own jitter at that load)."""
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
    return result, _paced(lambda: session.run(names, inputs), 0.7 * result.throughput, count, max_seconds)


def _paced(fn: Callable[[], object], rate: float, count: int, max_seconds: float) -> LoadResult:
    """Call fn at evenly spaced times; latency from each scheduled time (includes any lateness)."""
    result, origin = LoadResult(), time.perf_counter()
    for i in range(count):
        scheduled = origin + i / rate
        if scheduled - origin > max_seconds:
            break
        time.sleep(max(0.0, scheduled - time.perf_counter()))
        fn()
        result.latencies.append(time.perf_counter() - scheduled)
    result.seconds = time.perf_counter() - origin
    return result


STAGES = ("parse + validate (msgspec over the bytes; pydantic for what it refuses)", "encode (service.contract.features, numpy)",
          "session.run (all heads)", "combine + sort (numpy)", "build response (msgspec structs)")


def stage_breakdown(serving: Serving, request: dict, iterations: int, profile: bool = False) -> dict:
    """Median seconds of each stage of `service.live.pipeline.rank` for one request body, of rank() itself,
    and of bare session.run on the request's inputs, all in one loop."""
    model, profile_ = serving.model, serving.weights.profile(None)
    body = orjson.dumps(request)
    header = {"request_id": "r", "model_version": 1, "profile": profile_.name, "weights_generation": 1}
    times: dict[str, list[float]] = {k: [] for k in STAGES}
    totals, raw = [], []
    names, session = model.bundle.output_names, model.bundle.session
    for _ in range(iterations):
        t = [time.perf_counter()]
        req = model.parse(body)
        t.append(time.perf_counter())
        inputs = model.encode(req)
        t.append(time.perf_counter())
        heads = model.predict(inputs)
        t.append(time.perf_counter())
        scores = profile_.combine(heads)
        order = top_k_order(scores, req.top_k)
        t.append(time.perf_counter())
        response_body(header, req.item_ids, scores, heads, order)
        t.append(time.perf_counter())
        for k, name in enumerate(STAGES):
            times[name].append(t[k + 1] - t[k])
        t0 = time.perf_counter()
        rank(serving, body)
        totals.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        session.run(names, inputs)  # bare session.run on the same inputs, in the same loop: the floor's reference
        raw.append(time.perf_counter() - t0)
    if profile:
        _profile(serving, body, iterations)
    return {"parts": {k: statistics.median(v) for k, v in times.items()}, "total": statistics.median(totals),
            "parts_min": {k: min(v) for k, v in times.items()}, "total_min": min(totals), "iterations": iterations,
            "raw": statistics.median(raw)}


def _profile(serving: Serving, body: bytes, iterations: int) -> None:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0001)
    with profiler:
        for _ in range(iterations):
            rank(serving, body)
    print(profiler.output_text(unicode=False, color=False, show_all=False))


def gc_pauses(serving: Serving, request: dict, iterations: int) -> dict[str, tuple[float, float]]:
    """Longest and total cyclic-GC pause over `iterations` rank() calls, without and with gc.freeze()
    of what is alive at that point (what service.live.model_store does after every model swap)."""
    body = orjson.dumps(request)
    out = {}
    for frozen in (False, True):
        gc.unfreeze()
        gc.collect()
        if frozen:
            gc.freeze()
        pauses: list[float] = []
        started: list[float] = []

        def on_gc(phase: str, info: dict, pauses=pauses, started=started) -> None:
            if phase == "start":
                started.append(time.perf_counter())
            elif started:
                pauses.append(time.perf_counter() - started.pop())

        gc.callbacks.append(on_gc)
        try:
            for _ in range(iterations):
                rank(serving, body)
        finally:
            gc.callbacks.remove(on_gc)
        out["frozen" if frozen else "not frozen"] = (max(pauses, default=0.0), sum(pauses))
    gc.unfreeze()
    return out
