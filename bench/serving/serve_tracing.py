"""Tracing's cost: the same server with tracing off and on, side by side in one run (issue 26 §4).

Four server processes, identical but for the tracing settings: off (no RANKER_OTLP_ENDPOINT) twice (the
second one's ratio to the first is this run's noise floor: two identical processes), on (every
request traced: its caller's `traceparent` says sampled; spans exported by OTLP/HTTP to a receiver in this
process that decodes and counts them), and on with the default RANKER_TRACE_SAMPLE=0.1 for requests without
a `traceparent` (the server samples one trace in ten; the others make no span objects but the request's).
Loaded by wrk as bench/serving/serve_logging.py is (bench/serving/wrk_load.py `interleave`): a one-connection
slice each, then a slice with the run's connections each, round after round (each round starting with
the next server), so a busy moment of the shared machine hits all alike. Also, in-process: the CPU a recorded request costs (its
OpenTelemetry calls on the request's threads, its spans' encoding on the exporter thread), an unsampled
one's, and the off path's only addition (the route's None check and six `stage(None, ...)` calls).
Goals (issue 26): on costs <= 5 % of p50 and of throughput.

    python -m bench.serving.serve_tracing --bundle runs/demo-bundle        # ~2 min; writes its section of docs/BENCHMARKS.md
    python -m bench.serving.serve_latency --bundle runs/demo-bundle --tracing-only   # the same run
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import timeit
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson

from bench.doc_sections import DOC, write_section
from bench.serving.serve_logging import server_counts
from bench.serving.serve_processes import REPO, ServerProcess
from bench.serving.serve_stages import load_serving
from bench.serving.wrk_load import Interleaved, interleave
from service.contract.bundle import read_manifest
from service.examples import example_request
from service.live.pipeline import Ranked, rank
from service.live.state import Serving
from service.registry import Registry
from service.tracing import STAGES, Tracing, stage

SECTION = "serve-tracing"
SIZE = 500
ROUNDS = 6
GOAL_P50 = 1.05
GOAL_THROUGHPUT = 0.95
SAMPLED = "on, RANKER_TRACE_SAMPLE=0.1 (the default)"
TWIN = "off, a second process"
RECORDED = "on, every request recorded"
VARIANTS = ("off", TWIN, RECORDED, SAMPLED)
TRACED = (RECORDED, SAMPLED)
SERVER_ENV = {"off": {}, TWIN: {}, RECORDED: {}, SAMPLED: {"RANKER_TRACE_SAMPLE": "0.1"}}  # + RANKER_OTLP_ENDPOINT
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = {"off": True, TWIN: True, RECORDED: True, SAMPLED: False}  # a sampled caller's header, or none


class SpanSink:
    """A collector stand-in on 127.0.0.1: OTLP/HTTP POST /v1/traces, decoded (protobuf), spans counted per
    sending process (the resource's service.instance.id ends in -p<pid>)."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        self.spans: Counter[int] = Counter()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                request = ExportTraceServiceRequest()
                request.ParseFromString(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                for rs in request.resource_spans:
                    instance = next((a.value.string_value for a in rs.resource.attributes
                                     if a.key == "service.instance.id"), "")
                    pid = instance.rpartition("-p")[2]  # 0: not a server (the in-process measurement)
                    sink.spans[int(pid) if pid.isdigit() else 0] += sum(len(s.spans) for s in rs.scope_spans)
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
    load: Interleaved = field(default_factory=Interleaved)
    answered: dict[str, int] = field(default_factory=dict)  # per traced server, warm-up included
    spans: dict[str, int] = field(default_factory=dict)  # received by the sink, per traced server
    work: InProcess | None = None

    def p50_ratio(self, name: str) -> float:
        return self.load.p(name, 50) / self.load.p("off", 50)

    def peak_ratio(self, name: str) -> float:
        return self.load.throughput(name) / self.load.throughput("off")


@dataclass
class InProcess:
    rank_us: float  # service.live.pipeline.rank of one request, untraced
    sampled_us: float  # a recorded request's OpenTelemetry calls on the request threads
    unsampled_us: float  # the same for a request whose trace is not sampled
    off_ns: float  # the off path's only addition per request
    encode_us: float = 0.0  # one recorded request's spans encoded to OTLP protobuf (the exporter thread)


def measure(ports: dict[str, int], body: bytes, seconds: float, concurrency: int, rounds: int) -> TracingResult:
    """The servers loaded by wrk in interleaved slices; the traced ones' requests carry a sampled caller's
    `traceparent` (all but the one that samples by itself)."""
    headers = {name: {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"} for name in VARIANTS if TRACEPARENT[name]}
    return TracingResult(interleave(ports, body, seconds, concurrency, rounds, headers))


def request_work(tracing: Tracing, traceparent: str, ranked: Ranked) -> None:
    """The OpenTelemetry calls of one request, as the route and the pipeline make them, without the ranking."""
    trace = tracing.start_request({"traceparent": traceparent}, "/v1/rank")
    trace.traceparent()
    for name in STAGES:
        with stage(trace, name):
            pass
    trace.finish(200, ranked, None, None)


def off_work(tracing: Tracing | None = None) -> None:
    """What an untraced request adds: the route's None check and six `stage(None, ...)`."""
    trace = tracing.start_request({}, "/v1/rank") if tracing is not None else None
    for name in STAGES:
        with stage(trace, name):
            pass


def in_process(serving: Serving, body: bytes, iterations: int, endpoint: str) -> InProcess:
    """Each cost as the fastest of several short timed loops (the shared machine's busy moments only slow
    some loops down); the traced spans go through the server's BatchSpanProcessor and OTLP exporter."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    def best(fn, number: int, repeat: int = 20) -> float:
        return min(timeit.repeat(fn, number=number, repeat=repeat)) / number

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    tracing = Tracing(provider, "bench")
    ranked = rank(serving, body)
    sampled, unsampled = (f"00-{TRACE_ID}-00f067aa0ba902b7-{flags}" for flags in ("01", "00"))
    out = InProcess(rank_us=best(lambda: rank(serving, body), max(1, iterations // 20)) * 1e6,
                    sampled_us=best(lambda: request_work(tracing, sampled, ranked), 100) * 1e6,
                    unsampled_us=best(lambda: request_work(tracing, unsampled, ranked), 100) * 1e6,
                    off_ns=best(off_work, 10_000, 5) * 1e9)
    tracing.shutdown()
    # The exporter thread's share: one request's spans encoded as the OTLP exporter does (GIL held), in
    # batches of 512 spans like the batch processor's.
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    requests = 512 // (len(STAGES) + 1)
    for _ in range(requests):
        request_work(Tracing(provider, "bench"), sampled, ranked)
    spans = memory.get_finished_spans()
    out.encode_us = best(lambda: encode_spans(spans).SerializeToString(), 1, 10) / requests * 1e6
    return out


def run(args: argparse.Namespace) -> TracingResult:
    manifest = read_manifest(args.bundle)
    serving = load_serving(args.bundle, args.weights)
    body = orjson.dumps(example_request(manifest, SIZE, seed=0))
    sink = SpanSink()
    with tempfile.TemporaryDirectory(prefix="serve-tracing-") as tmp:
        registry = Registry(Path(tmp) / "registry", manifest.model_name)
        registry.publish(args.bundle)
        env = {"RANKER_REGISTRY_ROOT": str(registry.root), "RANKER_MODEL_NAME": manifest.model_name,
               "RANKER_WEIGHTS_PATH": str(args.weights), "RANKER_MAX_CANDIDATES": str(SIZE)}
        servers = {name: ServerProcess([sys.executable, "-m", "service.cli"], {
            **env, **extra, **({"RANKER_OTLP_ENDPOINT": sink.url} if name in TRACED else {})},
            Path(tmp) / f"tracing-{i}.log", "/v2/health/ready") for i, (name, extra) in enumerate(SERVER_ENV.items())}
        try:
            for s in servers.values():
                s.wait_ready()
            result = measure({n: s.port for n, s in servers.items()}, body, args.duration, args.concurrency,
                             args.rounds)
            for name in TRACED:
                result.answered[name] = int(server_counts(servers[name].port)[0])
                servers[name].stop()  # its lifespan exports what is queued: every span it made reaches the sink
                result.spans[name] = sink.spans[servers[name].proc.pid]
            result.work = in_process(serving, body, 200, sink.url)
        finally:
            for s in servers.values():
                s.stop()
            sink.stop()
    return result


def verdict(ok: bool, noise: float) -> str:
    """PASS/FAIL, unless two identical servers differed by more than the goal's margin in this run."""
    if noise > 1 - GOAL_THROUGHPUT:
        return f"inconclusive (noise {noise:.0%})"
    return "PASS" if ok else "FAIL"


def render(r: TracingResult, header: str) -> list[str]:
    load = r.load
    lines = [header, "",
             f"Tracing off vs on, {SIZE} candidates per request (all returned), the same server otherwise, loaded by "
             "wrk in slices interleaved between the servers in one run: latency = the median over "
             f"{len(load.latency['off'])} one-connection slices of wrk's p50 and p99, in ms; peak = requests/s over the "
             "slices with the "
             "run's connections. \"every request recorded\": every request carries a sampled caller's `traceparent` "
             "and its 7 spans are exported (OTLP/HTTP protobuf, BatchSpanProcessor) to a collector stand-in on "
             "127.0.0.1 (a thread of the benchmark's process) that decodes them; \"RANKER_TRACE_SAMPLE=0.1\": requests "
             "carry no `traceparent` and the server traces one in ten.", "",
             "| tracing | p50 | p99 | requests (1 connection) | peak req/s | p50 vs off | peak vs off |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in VARIANTS:
        lines.append(f"| {name} | {load.p(name, 50):.2f} | {load.p(name, 99):.2f} | {load.requests(name):,} "
                     f"| {load.throughput(name):.0f} | {r.p50_ratio(name):.3f}x | {r.peak_ratio(name):.3f}x |")
    noise = max(abs(r.p50_ratio(TWIN) - 1), abs(r.peak_ratio(TWIN) - 1))
    lines += ["", f"- noise floor of this run: two identical servers (off and its second process) differ by "
              f"{noise:.1%} (the larger of the p50 and peak differences)"]
    for name in TRACED:
        p50, thr = r.p50_ratio(name), r.peak_ratio(name)
        lines.append(f"- {name}: p50 {p50:.3f}x off (goal <= {GOAL_P50}x) -> {verdict(p50 <= GOAL_P50, noise)}; "
                     f"throughput {thr:.3f}x (goal >= {GOAL_THROUGHPUT}x) -> {verdict(thr >= GOAL_THROUGHPUT, noise)}")
    per = len(STAGES) + 1
    lines.append(f"- spans the collector received from the recording server after it stopped: {r.spans[RECORDED]:,} of "
                 f"the {r.answered[RECORDED] * per:,} of its {r.answered[RECORDED]:,} answered requests (warm-up included); from "
                 f"the sampled one, {r.spans[SAMPLED]:,}: {r.spans[SAMPLED] / per / max(1, r.answered[SAMPLED]):.1%} "
                 f"of its {r.answered[SAMPLED]:,} requests traced")
    if r.work is not None:
        lines += render_cpu(r.work)
    return lines


def render_cpu(w: InProcess) -> list[str]:
    """The in-process CPU per request: steady where the end-to-end ratios drown in the machine's noise."""
    recorded = w.sampled_us + w.encode_us
    at_sample = w.unsampled_us + 0.1 * (recorded - w.unsampled_us)
    goal = 1 - GOAL_THROUGHPUT
    return [
        f"- CPU per recorded request, in-process (fastest of 20 loops): {w.sampled_us:.0f} µs on the request's "
        f"threads (7 spans started, ended and queued, `traceparent` read and written) + {w.encode_us:.0f} µs on the "
        f"exporter thread (the spans encoded to OTLP protobuf, GIL held) = {recorded:.0f} µs, "
        f"{recorded / w.rank_us:.1%} of the {w.rank_us:.0f} µs `service.live.pipeline.rank` takes for the request "
        f"(goal <= {goal:.0%}) -> {'PASS' if recorded / w.rank_us <= goal else 'FAIL'}; a request whose trace is "
        f"not sampled: {w.unsampled_us:.0f} µs ({w.unsampled_us / w.rank_us:.1%}); so at RANKER_TRACE_SAMPLE=0.1 "
        f"{at_sample:.0f} µs per request on average, {at_sample / w.rank_us:.1%} -> "
        f"{'PASS' if at_sample / w.rank_us <= goal else 'FAIL'}",
        f"- the off path's only addition: the route's `runtime.tracing is not None` and six `stage(None, name)` "
        f"(one shared null context): {w.off_ns:.0f} ns per request ({w.off_ns / (w.rank_us * 1e3):.3%} of the "
        "in-process request); no OpenTelemetry object is made and the SDK's tracer is never imported. Off "
        "against the code before tracing cannot be measured side by side: it is that code plus these calls."]


def run_header(args: argparse.Namespace, load: list[float]) -> str:
    import platform
    import subprocess

    cmd = args.command or " ".join(["python -m bench.serving.serve_tracing", *sys.argv[1:]])
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
    p.add_argument("--duration", type=float, default=12.0, help="seconds of load per server and phase, in slices")
    p.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of slices (each at least 1 s)")
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
        write_section(SECTION, f"## Tracing cost (`bench/serving/serve_tracing.py`)\n\n{text}", args.doc)
        print(f"\nwritten to {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
