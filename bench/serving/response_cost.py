"""The response's cost in-process: per-task scores on/off and top_k, at 500 and 5,000 candidates.

Each variant is one whole `service.live.pipeline.rank` call on the same request; variants are
interleaved in one loop, so their ratios are measured side by side.
"""

from __future__ import annotations

import statistics
import time

import orjson

from service.examples import example_request
from service.live.pipeline import rank
from service.live.state import Serving

VARIANTS = {"all items, per-task scores (default)": {}, "all items, `\"scores\": false`": {"scores": False},
            "`top_k: 10`, per-task scores": {"top_k": 10}}


def measure(serving: Serving, sizes: list[int], runs: int = 60, max_seconds: float = 6.0) -> dict:
    """{size: {variant: (median s, min s, response bytes)}}."""
    out = {}
    for size in sizes:
        base = example_request(serving.model.manifest, size, seed=0, request_id="r")
        bodies = {name: orjson.dumps({**base, **extra}) for name, extra in VARIANTS.items()}
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        sizes_out = {name: len(rank(serving, body).body) for name, body in bodies.items()}  # warm-up
        start = time.perf_counter()
        for _ in range(runs):
            for name, body in bodies.items():
                t0 = time.perf_counter()
                rank(serving, body)
                times[name].append(time.perf_counter() - t0)
            if time.perf_counter() - start > max_seconds:
                break
        out[size] = {n: (statistics.median(t), min(t), sizes_out[n]) for n, t in times.items()}
    return out


def render(result: dict) -> list[str]:
    lines = ["| candidates | request | in-process `rank()` ms (median, min) | vs default | response bytes |",
             "|---:|---|---:|---:|---:|"]
    for size, variants in result.items():
        default = next(iter(variants.values()))[0]
        for name, (median, low, nbytes) in variants.items():
            lines.append(f"| {size:,} | {name} | {median * 1e3:.2f}, {low * 1e3:.2f} | {median / default:.2f} "
                         f"| {nbytes:,} |")
    return lines
