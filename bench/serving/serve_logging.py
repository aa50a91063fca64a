"""The impression log's cost, in bench/serving/serve_latency.py: the same server with logging off and on.

Two server processes, identical but for RANKER_LOG_DIR, measured interleaved (a chunk of
sequential requests each, then a closed-loop slice each, round after round), so a busy moment of
the shared machine hits both alike. Also, in-process: the request thread's share (`offer`: sample,
record, queue) and the writer thread's work per record (`record_batch`), which shares the GIL.
Goals (issue 23): p50 + <= 0.2 ms and throughput >= 0.95x with logging on.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry

from bench.serving.http_load import LoadResult, closed_loop, post_request, sequential
from service.impressions.columns import record_batch
from service.impressions.config import LogConfig
from service.impressions.segments import Segment, compact, new_stem
from service.impressions.writer import ImpressionLog
from service.live.response import top_k_order
from service.live.state import Serving

CHUNK = 20
ROUNDS = 6
GOAL_P50_MS = 0.2
GOAL_THROUGHPUT = 0.95
VARIANTS = ("off", "on", "on, features none")  # the third: RANKER_LOG_FEATURES=none (no feature columns)
LABELS = {"off": "off", "on": "on (all features)", "on, features none": "on, `RANKER_LOG_FEATURES=none`"}


@dataclass
class LoggingResult:
    size: int
    latency: dict[str, LoadResult] = field(default_factory=lambda: {v: LoadResult() for v in VARIANTS})
    peak: dict[str, LoadResult] = field(default_factory=lambda: {v: LoadResult() for v in VARIANTS})
    offer_us: float = 0.0
    batch_us_per_record: float = 0.0
    compact_us_per_record: float = 0.0
    rows_logged: int = 0
    rows_answered: int = 0
    dropped: float = 0.0


def measure(ports: dict[str, int], bodies: list[bytes], size: int, requests: int, seconds: float,
            concurrency: int) -> LoggingResult:
    """Interleaved latency (sequential chunks) and peak throughput (closed-loop slices) of both servers."""
    result = LoggingResult(size)
    reqs = [post_request("/v1/rank", b) for b in bodies]
    for port in ports.values():  # warm-up
        asyncio.run(sequential(port, reqs, CHUNK, seconds))
    start = time.perf_counter()
    for _ in range(max(1, requests // CHUNK)):
        for name in VARIANTS:
            _add(result.latency[name], asyncio.run(sequential(ports[name], reqs, CHUNK, seconds)), name)
        if time.perf_counter() - start > 2 * seconds:
            break
    for _ in range(ROUNDS):
        for name in VARIANTS:
            r = asyncio.run(closed_loop(ports[name], reqs, concurrency, seconds / ROUNDS, requests * 20))
            _add(result.peak[name], r, name)
    return result


def _add(total: LoadResult, part: LoadResult, name: str) -> None:
    if part.errors:
        raise RuntimeError(f"logging {name}: {part.errors} failed requests")
    total.latencies += part.latencies
    total.seconds += part.seconds


def server_counts(port: int) -> tuple[float, float]:
    """(requests answered 200, impression records dropped) from a server's /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    answered = dropped = 0.0
    for line in text.splitlines():
        if line.startswith('ranker_requests_total{status="200"}'):
            answered = float(line.rsplit(" ", 1)[1])
        elif line.startswith("ranker_log_dropped_total{"):
            dropped += float(line.rsplit(" ", 1)[1])
    return answered, dropped


def logged_rows(log_dir: Path) -> int:
    return sum(pq.read_metadata(f).num_rows for f in log_dir.glob("impressions/date=*/hour=*/*.parquet"))


def in_process(serving: Serving, body: bytes, iterations: int) -> tuple[float, float, float]:
    """(µs of `offer` on the request thread; µs per record on the writer thread of `record_batch`, in
    batches of 8, and of compacting a segment to Parquet), on one real ranked request; `offer` and
    `record_batch` are each the best of 3 timed loops after a warm-up."""
    model, weights = serving.model, serving.weights
    request = model.parse(body)
    heads = model.predict(model.encode(request))
    profile = weights.profile(None)
    scores = profile.combine(heads)
    order = top_k_order(scores, None)
    with tempfile.TemporaryDirectory(prefix="log-cost-") as tmp:
        log = ImpressionLog(LogConfig(destination=tmp, queue_size=4 * iterations), CollectorRegistry())

        def offer() -> None:
            log.offer(request.request_id or "bench", model, weights, profile.name, None, request, scores, heads, order)

        offer_s = min(timeit.repeat(offer, number=iterations, repeat=3)) / iterations
        records = [log._queue.get_nowait() for _ in range(8)]
        batch = record_batch(records, "bench")  # also the warm-up: pyarrow's first calls
        loops = max(1, iterations // 8)
        batch_s = min(timeit.repeat(lambda: record_batch(records, "bench"), number=loops, repeat=3)) / loops
        segment = Segment(Path(tmp), "date=2026-01-01/hour=00", new_stem("bench-p0", 1), batch.schema)
        for _ in range(loops):
            segment.write(batch)
        segment.close()
        t0 = time.perf_counter()
        compact(segment.path)
        compact_s = (time.perf_counter() - t0) / loops
    return offer_s * 1e6, batch_s / len(records) * 1e6, compact_s / len(records) * 1e6


def render(r: LoggingResult) -> list[str]:
    def p(name: str, q: float) -> float:
        return r.latency[name].percentile(q) * 1000

    lines = [f"Impression log off vs on, {r.size} candidates per request (all returned), the same server "
             "otherwise, measured interleaved in one run: latency client-side in ms, one request at a time; peak = "
             "closed loop with its connections, in slices alternating between the servers.", "",
             "| impression log | p50 | p99 | requests | peak req/s | peak rows logged/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for name in VARIANTS:
        rows = r.peak[name].throughput * r.size if name != "off" else 0
        lines.append(f"| {LABELS[name]} | {p(name, 50):.2f} | {p(name, 99):.2f} | {len(r.latency[name].latencies)} "
                     f"| {r.peak[name].throughput:.0f} | {rows:,.0f} |")
    lines.append("")
    for name in VARIANTS[1:]:
        added = p(name, 50) - p("off", 50)
        ratio = r.peak[name].throughput / r.peak["off"].throughput if r.peak["off"].throughput else float("nan")
        lines += [f"- {LABELS[name]}: p50 {added:+.2f} ms (goal <= +{GOAL_P50_MS} ms) -> "
                  f"{'PASS' if added <= GOAL_P50_MS else 'FAIL'}; throughput {ratio:.2f}x (goal >= "
                  f"{GOAL_THROUGHPUT}x) -> {'PASS' if ratio >= GOAL_THROUGHPUT else 'FAIL'}"]
    lines += [
              f"- rows in the all-features log's Parquet files after its server stopped: {r.rows_logged:,} of the "
              f"{r.rows_answered:,} it answered (warm-up included); records dropped: {r.dropped:.0f}",
              f"- in-process, per {r.size}-row record: `ImpressionLog.offer` on the request thread {r.offer_us:.1f} µs; "
              f"on the writer thread, `record_batch` (Arrow columns, GIL held) {r.batch_us_per_record:.0f} µs and "
              f"the compaction to Parquet {r.compact_us_per_record:.0f} µs"]
    return lines
