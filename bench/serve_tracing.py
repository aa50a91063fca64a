"""Tracing's cost: the same server with tracing off and on, side by side in one run (issue 26 §4).

Three server processes, identical but for the tracing settings: off (no RANKER_OTLP_ENDPOINT), on (every
request traced: its caller's `traceparent` says sampled; spans exported by OTLP/HTTP to a receiver in this
process that decodes and counts them), and on with the caller not sampling (`traceparent` flags 00: the
spans are made but not recorded, what most requests cost under a small RANKER_TRACE_SAMPLE). Measured
interleaved as bench/serve_logging.py does: a chunk of sequential requests each, then a closed-loop slice
each, round after round, so a busy moment of the shared machine hits all alike. Also, in-process: the
request thread's OpenTelemetry work per traced request, and the off path's only addition (six
`stage(None, ...)` calls and the route's None check). Goals: on costs <= 5 % of p50 and of throughput.

    python bench/serve_tracing.py --bundle runs/demo-bundle        # ~1 min; writes its section of docs/BENCHMARKS.md
    python bench/serve_latency.py --bundle runs/demo-bundle --tracing-only   # the same run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
import timeit
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
from doc_sections import DOC, write_section
from http_load import LoadResult, closed_loop, sequential
from serve_logging import server_counts
from serve_processes import REPO, ServerProcess
from serve_stages import load_serving

from service.contract.bundle import read_manifest
from service.examples import example_request
from service.live.pipeline import rank
from service.live.state import Serving
from service.registry import Registry
from service.tracing import STAGES, Tracing, stage

SECTION = "serve-tracing"
SIZE = 500
CHUNK = 20
ROUNDS = 6
DISTINCT_BODIES = 8
GOAL_P50 = 1.05
GOAL_THROUGHPUT = 0.95
VARIANTS = ("off", "on", "on, caller not sampling")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
FLAGS = {"off": "01", "on": "01", "on, caller not sampling": "00"}


class SpanSink:
    """A collector stand-in on 127.0.0.1: OTLP/HTTP POST /v1/traces, decoded (protobuf), spans counted."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans = self.posts = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                sink.spans += sum(len(s.spans) for rs in request.resource_spans for s in rs.scope_spans)
                sink.posts += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="span-sink", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class TracingResult:
    latency: dict[str, LoadResult] = field(default_factory=lambda: {v: LoadResult() for v in VARIANTS})
    peak: dict[str, LoadResult] = field(default_factory=lambda: {v: LoadResult() for v in VARIANTS})
    answered: int = 0  # by the "on" server, warm-up included
    spans: int = 0  # received by the sink from the "on" server
    rank_us: float = 0.0  # in-process rank() of one request, tracing off
    traced_us: float = 0.0  # the same with a recorded trace: spans, traceparent, attributes
    off_ns: float = 0.0  # the off path's only addition per request


def traced_request(body: bytes, flags: str) -> bytes:
    head = (f"POST /v1/rank HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"traceparent: 00-{TRACE_ID}-00f067aa0ba902b7-{flags}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head + body


def measure(ports: dict[str, int], bodies: list[bytes], requests: int, seconds: float,
            concurrency: int) -> TracingResult:
    """Interleaved latency (sequential chunks) and peak throughput (closed-loop slices) of the servers."""
    result = TracingResult()
    reqs = {name: [traced_request(b, FLAGS[name]) for b in bodies] for name in VARIANTS}
    for name in VARIANTS:  # warm-up
        asyncio.run(sequential(ports[name], reqs[name], CHUNK, seconds))
    start = time.perf_counter()
    for _ in range(max(1, requests // CHUNK)):
        for name in VARIANTS:
            _add(result.latency[name], asyncio.run(sequential(ports[name], reqs[name], CHUNK, seconds)), name)
        if time.perf_counter() - start > 2 * seconds:
            break
    for _ in range(ROUNDS):
        for name in VARIANTS:
            r = asyncio.run(closed_loop(ports[name], reqs[name], concurrency, seconds / ROUNDS, requests * 20))
            _add(result.peak[name], r, name)
    return result


def _add(total: LoadResult, part: LoadResult, name: str) -> None:
    if part.errors:
        raise RuntimeError(f"tracing {name}: {part.errors} failed requests")
    total.latencies += part.latencies
    total.seconds += part.seconds


def in_process(serving: Serving, body: bytes, iterations: int, endpoint: str) -> tuple[float, float, float]:
    """(µs of rank() untraced; µs of rank() with a recorded trace, exported by the server's BatchSpanProcessor
    and OTLP exporter to `endpoint`; ns of the off path's additions), best of 5 interleaved timed loops."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    tracing = Tracing(provider, "bench")
    headers = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}

    def off() -> None:
        rank(serving, body)

    def on() -> None:
        trace = tracing.start_request(headers, "/v1/rank")
        trace.traceparent()
        trace.finish(200, rank(serving, body, trace=trace), None, None)

    def off_additions(tracing: Tracing | None = None) -> None:  # what an untraced request adds, as the route does
        trace = tracing.start_request(headers, "/v1/rank") if tracing is not None else None
        for name in STAGES:
            with stage(trace, name):
                pass

    loops = max(1, iterations // 5)
    off(), on()  # warm-up
    offs, ons = [], []
    for _ in range(5):
        offs.append(timeit.timeit(off, number=loops) / loops)
        ons.append(timeit.timeit(on, number=loops) / loops)
    added = min(timeit.repeat(off_additions, number=10_000, repeat=5)) / 10_000
    tracing.shutdown()
    return min(offs) * 1e6, min(ons) * 1e6, added * 1e9


def run(args: argparse.Namespace) -> TracingResult:
    manifest = read_manifest(args.bundle)
    serving = load_serving(args.bundle, args.weights)
    bodies = [orjson.dumps(example_request(manifest, SIZE, seed=s)) for s in range(DISTINCT_BODIES)]
    sink = SpanSink()
    with tempfile.TemporaryDirectory(prefix="serve-tracing-") as tmp:
        registry = Registry(Path(tmp) / "registry", manifest.model_name)
        registry.publish(args.bundle)
        env = {"RANKER_REGISTRY_ROOT": str(registry.root), "RANKER_MODEL_NAME": manifest.model_name,
               "RANKER_WEIGHTS_PATH": str(args.weights), "RANKER_MAX_CANDIDATES": str(SIZE)}
        on = {"RANKER_OTLP_ENDPOINT": sink.url}
        servers = {name: ServerProcess([sys.executable, "-m", "service.cli"], {**env, **extra},
                                       Path(tmp) / f"tracing-{i}.log", "/v2/health/ready")
                   for i, (name, extra) in enumerate({"off": {}, "on": on, "on, caller not sampling": on}.items())}
        try:
            for s in servers.values():
                s.wait_ready()
            result = measure({n: s.port for n, s in servers.items()}, bodies, args.requests, args.duration,
                             args.concurrency)
            result.answered = int(server_counts(servers["on"].port)[0])
            servers["on"].stop()  # its lifespan exports what is queued: every span of its requests reaches the sink
            result.spans = sink.spans
            result.rank_us, result.traced_us, result.off_ns = in_process(
                serving, bodies[0], min(args.requests, 200), sink.url)
        finally:
            for s in servers.values():
                s.stop()
            sink.stop()
    return result


def render(r: TracingResult, header: str) -> list[str]:
    def p(name: str, q: float) -> float:
        return r.latency[name].percentile(q) * 1000

    lines = [header, "",
             f"Tracing off vs on, {SIZE} candidates per request (all returned), the same server otherwise, measured "
             "interleaved in one run: latency client-side in ms, one request at a time; peak = closed loop with its "
             "connections, in slices alternating between the servers. Every request carries a `traceparent`; "
             "\"on\" exports every request's 7 spans (OTLP/HTTP protobuf, BatchSpanProcessor) to a collector "
             "stand-in on 127.0.0.1 that decodes them.", "",
             "| tracing | p50 | p99 | requests | peak req/s | p50 vs off | peak vs off |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in VARIANTS:
        ratio = r.peak[name].throughput / r.peak["off"].throughput if r.peak["off"].throughput else float("nan")
        lines.append(f"| {name} | {p(name, 50):.2f} | {p(name, 99):.2f} | {len(r.latency[name].latencies)} "
                     f"| {r.peak[name].throughput:.0f} | {p(name, 50) / p('off', 50):.3f}x | {ratio:.3f}x |")
    lines.append("")
    for name in VARIANTS[1:]:
        p50 = p(name, 50) / p("off", 50)
        thr = r.peak[name].throughput / r.peak["off"].throughput if r.peak["off"].throughput else float("nan")
        lines.append(f"- {name}: p50 {p50:.3f}x off (goal <= {GOAL_P50}x) -> {'PASS' if p50 <= GOAL_P50 else 'FAIL'}; "
                     f"throughput {thr:.3f}x (goal >= {GOAL_THROUGHPUT}x) -> "
                     f"{'PASS' if thr >= GOAL_THROUGHPUT else 'FAIL'}")
    expected = r.answered * (len(STAGES) + 1)
    lines += [f"- spans the collector received from the \"on\" server after it stopped: {r.spans:,} of the "
              f"{expected:,} of its {r.answered:,} answered requests (warm-up included)",
              f"- in-process, one {SIZE}-candidate request (`service.live.pipeline.rank`, best of 5 loops): "
              f"{r.rank_us:.0f} µs untraced, {r.traced_us:.0f} µs traced ({r.traced_us - r.rank_us:+.0f} µs on the "
              "request thread: 7 spans started, ended and queued, `traceparent` read and written)",
              f"- the off path's only addition: the route's `runtime.tracing is not None` and six "
              f"`stage(None, name)` (one shared null context): {r.off_ns:.0f} ns per request, "
              f"{r.off_ns / (r.rank_us * 1e3):.4%} of the in-process request; no OpenTelemetry object is made and "
              "the SDK's tracer is never imported. (Off against the code before tracing cannot be measured in "
              "one run: it is that code plus these calls.)"]
    return lines


def run_header(args: argparse.Namespace, load: list[float]) -> str:
    import platform
    import subprocess

    cmd = args.command or " ".join(["python bench/serve_tracing.py", *sys.argv[1:]])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"Measured by `{cmd}` on {date.today().isoformat()} at commit `{commit}`, {platform.machine()} with "
            f"{cpus} cores (1-minute load average {' -> '.join(f'{a:.1f}' for a in load)} from start to end of "
            "the run).")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", type=Path, default=REPO / "runs" / "demo-bundle", help="bundle directory to serve")
    p.add_argument("--weights", type=Path, default=REPO / "configs" / "weights.yaml")
    p.add_argument("--requests", type=int, default=400, help="most sequential requests per server")
    p.add_argument("--duration", type=float, default=8.0, help="most seconds per measurement phase")
    p.add_argument("--concurrency", type=int, default=4, help="connections of the closed-loop (peak) phase")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file to write the section into")
    p.add_argument("--no-doc", action="store_true", help="print the table only")
    return p.parse_args(argv)


def main(argv: list[str] | None = None, command: str | None = None) -> None:
    """Measure and write the `serve-tracing` section; `command` names the invocation in the doc."""
    args = parse_args(argv)
    args.command = command
    if not (args.bundle / "manifest.json").exists():
        sys.exit(f"no bundle at {args.bundle}; run `make run` (or `ranker train configs/demo.yaml --out {args.bundle}`)")
    load = [os.getloadavg()[0]]
    result = run(args)
    load.append(os.getloadavg()[0])
    text = "\n".join(render(result, run_header(args, load)))
    print(text)
    if not args.no_doc:
        write_section(SECTION, f"## Tracing cost (`bench/serve_tracing.py`)\n\n{text}", args.doc)
        print(f"\nwritten to {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
