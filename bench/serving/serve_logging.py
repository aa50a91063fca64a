"""The impression log's cost, in bench/serving/serve_latency.py: the same server with logging off and on.

Four server processes, identical but for RANKER_LOG_DIR and RANKER_LOG_FEATURES (two with the log
off: their difference is the run's noise floor), loaded by wrk
(compiled: the client's CPU is not taken from the server's machine as a Python client's would be) in
slices interleaved round after round: one connection (latency), then `concurrency` connections (peak
throughput), so a busy moment of the shared machine hits every server alike. Also, in-process: the
request thread's share (`offer`: sample, record, queue) and the writer thread's work per record
(`record_batch`, GIL held; the compaction to Parquet, GIL released), on distinct requests.
Goals (issue 23): p50 + <= 0.2 ms and throughput >= 0.95x with logging on.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from prometheus_client import CollectorRegistry

from bench.serving.wrk_load import Interleaved, interleave
from service.impressions.columns import record_batch
from service.impressions.config import LogConfig
from service.impressions.segments import Segment, compact, new_stem
from service.impressions.writer import GROUP, ImpressionLog
from service.live.response import top_k_order
from service.live.state import Serving

ROUNDS = 6
GOAL_P50_MS = 0.2
GOAL_THROUGHPUT = 0.95
# "off, a second process": the same server as "off" in another process, so the run states its own noise floor.
VARIANTS = ("off", "off, a second process", "on", "on, features none")
LABELS = {"off": "off", "off, a second process": "off, a second process", "on": "on (all features)",
          "on, features none": "on, `RANKER_LOG_FEATURES=none`"}
LOGGED = VARIANTS[2:]


@dataclass
class LoggingResult:
    size: int
    load: Interleaved = field(default_factory=Interleaved)
    offer_us: float = 0.0
    batch_us_per_record: float = 0.0
    batch_us_uncoded: float = 0.0  # the same records without the encoder's codes (every string converted)
    compact_us_per_record: float = 0.0
    rows_logged: int = 0
    rows_answered: int = 0
    dropped: float = 0.0


def measure(ports: dict[str, int], body: bytes, size: int, seconds: float, concurrency: int) -> LoggingResult:
    """ROUNDS rounds; in each, every server gets a 1-connection slice, then a `concurrency` one."""
    return LoggingResult(size, interleave(ports, body, seconds, concurrency, ROUNDS))


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


def in_process(serving: Serving, bodies: list[bytes], iterations: int) -> tuple[float, float, float, float]:
    """(µs of `offer` on the request thread, best of 3 loops; CPU µs per record on the writer thread of
    `record_batch`, in groups of the writer's GROUP, of the same without the encoder's codes (categorical
    item columns converted from the request's strings), and of compacting their segment to Parquet, best
    of 3), on real ranked requests, distinct ones for the writer (as the log sees them)."""
    model, weights = serving.model, serving.weights
    profile = weights.profile(None)
    with tempfile.TemporaryDirectory(prefix="log-cost-") as tmp:
        log = ImpressionLog(LogConfig(destination=tmp, queue_size=4 * iterations + len(bodies)), CollectorRegistry())
        for i, body in enumerate(bodies):
            request = model.parse(body)
            heads = model.predict(model.encode(request))
            scores = profile.combine(heads)
            order = top_k_order(scores, None)
            log.offer(f"bench-{i}", model, weights, profile.name, None, request, scores, heads, order)
        records = [log._queue.popleft() for _ in bodies]
        offer_s = min(timeit.repeat(lambda: log.offer("bench", model, weights, profile.name, None, request, scores,
                                                      heads, order), number=iterations, repeat=3)) / iterations
        groups = [records[i:i + GROUP] for i in range(0, len(records), GROUP)]
        uncoded = [[dataclasses.replace(r, codes={}) for r in g] for g in groups]
        batches = [record_batch(g, "bench") for g in groups]  # also the warm-up: pyarrow's first calls
        batch_s, uncoded_s = (min(_cpu(lambda: [record_batch(g, "bench") for g in gs]) for _ in range(3))  # noqa: B023
                              for gs in (groups, uncoded))
        compact_s = float("inf")
        for seq in range(3):
            segment = Segment(Path(tmp), "date=2026-01-01/hour=00", new_stem("bench-p0", seq), batches[0].schema)
            for batch in batches:
                segment.write(batch)
            segment.close()
            compact_s = min(compact_s, _cpu(lambda: compact(segment.path)))  # noqa: B023 (called at once)
    return (offer_s * 1e6, batch_s / len(records) * 1e6, uncoded_s / len(records) * 1e6,
            compact_s / len(records) * 1e6)


def _cpu(work) -> float:
    """CPU seconds of the process (this thread, and pyarrow's work outside the GIL) to run `work`."""
    t0 = time.process_time()
    work()
    return time.process_time() - t0


def render(r: LoggingResult) -> list[str]:
    lines = [f"Impression log off vs on, {r.size} candidates per request (all returned), the same server "
             "otherwise, measured by wrk in slices interleaved between the servers, in one run: latency = the median "
             f"over {ROUNDS} one-connection slices of wrk's p50 and p99, in ms; peak = requests/s over the slices "
             "with the run's connections.", "",
             "| impression log | p50 | p99 | requests (1 connection) | peak req/s | peak rows logged/s |",
             "|---|---:|---:|---:|---:|---:|"]
    load = r.load
    for name in VARIANTS:
        rows = load.throughput(name) * r.size if name in LOGGED else 0
        lines.append(f"| {LABELS[name]} | {load.p(name, 50):.2f} | {load.p(name, 99):.2f} "
                     f"| {load.requests(name):,} | {load.throughput(name):.0f} | {rows:,.0f} |")
    lines.append("")
    twin = "off, a second process"
    noise_ms, noise_ratio = load.p(twin, 50) - load.p("off", 50), load.throughput(twin) / load.throughput("off")
    lines += [f"- noise floor of this run, two identical servers with the log off: p50 {noise_ms:+.2f} ms, throughput "
              f"{noise_ratio:.2f}x"]
    for name in LOGGED:
        added = load.p(name, 50) - load.p("off", 50)
        ratio = load.throughput(name) / load.throughput("off")
        lines += [f"- {LABELS[name]}: p50 {added:+.2f} ms (goal <= +{GOAL_P50_MS} ms) -> "
                  f"{'PASS' if added <= GOAL_P50_MS else 'FAIL'}; throughput {ratio:.2f}x (goal >= "
                  f"{GOAL_THROUGHPUT}x) -> {'PASS' if ratio >= GOAL_THROUGHPUT else 'FAIL'}"]
    lines += [
              f"- rows in the all-features log's Parquet files after its server stopped: {r.rows_logged:,} of the "
              f"{r.rows_answered:,} it answered (warm-up included); records dropped: {r.dropped:.0f}",
              f"- in-process, per {r.size}-row record: `ImpressionLog.offer` on the request thread {r.offer_us:.1f} µs; "
              f"on the writer thread, CPU: `record_batch` (Arrow columns, GIL held) {r.batch_us_per_record:.0f} µs "
              f"({r.batch_us_uncoded:.0f} µs for the same records without the encoder's codes, every categorical item "
              "string converted from Python) "
              f"and the compaction to Parquet (GIL released) {r.compact_us_per_record:.0f} µs"]
    return lines
