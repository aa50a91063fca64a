"""Serving latency and throughput: this server vs raw session.run vs a naive server, one run.

For each request size (candidates per request) it measures, on loopback only and bounded in
requests and seconds:
  (a) this server (`python -m service.cli`, uvicorn, one process) over HTTP
  (b) raw `session.run` on the same request pre-encoded: the floor no server can beat
  (c) bench/serving/naive_server.py: FastAPI + one pydantic model per candidate + a Python encoding loop +
      torch eager, over HTTP (at 500 candidates only: the throughput floor's size)
with client-side p50/p99 latency from the Python client (one request at a time), peak throughput
(closed loop) and p50/p99 at ~70% of the peak (open loop, Poisson arrivals); at 500 candidates also
with `wrk` (bench/serving/wrk_load.py; apt-get installs it when missing) at 1, 2 and 4 connections. Then it
times each stage of this server's request path in-process for 500 candidates, id-only requests
(bench/serving/serve_id_only.py), computes each floor's verdict and writes the tables into docs/BENCHMARKS.md between
`<!-- BEGIN serve-latency -->` and `<!-- END serve-latency -->`. The impression log's cost (logging
off vs on at 500 candidates, bench/serving/serve_logging.py) goes into its own section, `serve-latency-logging`.

    python -m bench.serving.serve_latency --bundle runs/demo-bundle            # full run (~10 min)
    python -m bench.serving.serve_latency --bundle B --sizes 20 --requests 20 --duration 0.5 --no-doc   # smoke
    python -m bench.serving.serve_latency --bundle runs/demo-bundle --logging-only    # the log's section alone (~1 min)
    python -m bench.serving.serve_latency --bundle runs/demo-bundle --tracing-only    # tracing off vs on (bench/serving/serve_tracing.py)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import orjson

from bench.doc_sections import DOC, write_section
from bench.serving import serve_logging, serve_tracing
from bench.serving.http_load import LoadResult, closed_loop, open_loop, post_request, sequential
from bench.serving.serve_floors import (
    FLOOR_SIZE,
    OTHER_SCORING,
    WRK_SERVERS,
    render_floors,
    render_wrk,
)
from bench.serving.serve_id_only import IdOnlyResult, RedisProcess, prepare_stores, snapshot_files
from bench.serving.serve_id_only import bodies as id_only_bodies
from bench.serving.serve_id_only import in_process as lookup_in_process
from bench.serving.serve_id_only import measure as measure_id_only
from bench.serving.serve_id_only import render as render_id_only
from bench.serving.serve_processes import ServerProcess
from bench.serving.serve_stages import gc_pauses, load_serving, raw_session_run, stage_breakdown
from bench.serving.wrk_load import WrkResult, run_wrk
from service.contract.bundle import read_manifest
from service.examples import example_request
from service.registry import Registry

REPO = Path(__file__).resolve().parents[2]
SECTION = "serve-latency"
SECTION_ID_ONLY = "serve-latency-id-only"
SECTION_LOGGING = "serve-latency-logging"
DISTINCT_BODIES = 8


@dataclass
class ServerRun:
    sequential: LoadResult
    peak: LoadResult
    at70: LoadResult  # evenly spaced arrivals at 70% of peak
    at70_poisson: LoadResult  # Poisson arrivals at 70% of peak


@dataclass
class SizeRow:
    size: int
    raw: LoadResult
    raw70: LoadResult  # raw session.run evenly paced at 70% of its peak: the machine's jitter
    ours: ServerRun
    naive: ServerRun | None  # measured at 500 candidates only
    workers2: ServerRun | None
    wrk: dict[str, list[WrkResult]] = field(default_factory=dict)  # server -> one result per connection count


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bundle", type=Path, default=REPO / "runs" / "demo-bundle", help="bundle directory to serve")
    p.add_argument("--weights", type=Path, default=REPO / "configs" / "weights.yaml")
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 1000, 5000], help="candidates per request")
    p.add_argument("--requests", type=int, default=400, help="most requests per latency measurement")
    p.add_argument("--duration", type=float, default=8.0, help="most seconds per measurement phase")
    p.add_argument("--concurrency", type=int, default=4, help="connections of the closed-loop (peak) phase")
    p.add_argument("--workers-variant", type=int, default=2,
                   help="also measure `ranker-serve --workers N` (1 vs N processes; 0 = skip)")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file to write the section into")
    p.add_argument("--no-doc", action="store_true", help="print the tables only")
    p.add_argument("--profile", action="store_true", help="print a pyinstrument profile of the in-process path")
    p.add_argument("--features", type=Path, default=REPO / "data" / "demo-features",
                   help="items.parquet and users.parquet for the id-only rows (written by `ranker demo-data`)")
    p.add_argument("--id-only-size", type=int, default=500, help="candidates per id-only request")
    p.add_argument("--no-id-only", action="store_true", help="skip the id-only rows (and Redis)")
    p.add_argument("--connections", type=int, nargs="+", default=[1, 2, 4], help="wrk connection counts at 500")
    p.add_argument("--no-logging", action="store_true", help="skip the impression log off vs on rows")
    p.add_argument("--logging-seconds", type=float, default=12.0,
                   help="seconds of wrk per server and connection count in the log's off-vs-on rows (in 6 slices)")
    p.add_argument("--logging-only", action="store_true",
                   help="measure only the impression log off vs on (its section of the doc alone)")
    p.add_argument("--tracing-only", action="store_true",
                   help="measure only tracing off vs on (bench/serving/serve_tracing.py, its section of the doc alone)")
    return p.parse_args(argv)


def measure_server(port: int, bodies: list[bytes], args: argparse.Namespace) -> ServerRun:
    requests = [post_request("/v1/rank", b) for b in bodies]
    asyncio.run(sequential(port, requests, 30, args.duration))  # warm-up (connections, allocators)
    seq = asyncio.run(sequential(port, requests, args.requests, args.duration))
    peak = asyncio.run(closed_loop(port, requests, args.concurrency, args.duration, args.requests * 20))
    rate = max(1.0, 0.7 * peak.throughput)
    at70 = asyncio.run(open_loop(port, requests, rate, args.duration, args.requests * 20))
    at70_poisson = asyncio.run(open_loop(port, requests, rate, args.duration, args.requests * 20, poisson=True))
    for name, r in (("sequential", seq), ("peak", peak), ("70%", at70), ("70% Poisson", at70_poisson)):
        if r.errors:
            raise RuntimeError(f"port {port}: {r.errors} failed requests in the {name} phase")
    return ServerRun(seq, peak, at70, at70_poisson)


def ranking_of(port: int, body: bytes) -> list:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/rank", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return [item["item_id"] for item in orjson.loads(r.read())["items"]]


def start_servers(args: argparse.Namespace, tmp: Path) -> dict[str, ServerProcess]:
    manifest = read_manifest(args.bundle)
    registry = Registry(tmp / "registry", manifest.model_name)
    registry.publish(args.bundle)
    env = {"RANKER_REGISTRY_ROOT": str(registry.root), "RANKER_MODEL_NAME": manifest.model_name,
           "RANKER_WEIGHTS_PATH": str(args.weights), "RANKER_MAX_CANDIDATES": str(max(1000, *args.sizes))}
    if args.id_only:
        args.redis = RedisProcess(tmp)
        prepare_stores(registry, manifest, snapshot_files(args.features), args.redis.url)
    servers = {
        "ours": ServerProcess([sys.executable, "-m", "service.cli"], env, tmp / "ours.log", "/v2/health/ready"),
        "naive": ServerProcess([sys.executable, str(REPO / "bench" / "serving" / "naive_server.py"), "--bundle", str(args.bundle),
                                "--weights", str(args.weights)], env, tmp / "naive.log", "/health", port_flag=True),
    }
    if args.workers_variant:  # ranker-serve --workers N: uvicorn workers, metrics in multiprocess mode
        workers_env = {**env, "RANKER_WORKERS": str(args.workers_variant),
                       "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics")}
        servers["workers"] = ServerProcess([sys.executable, "-m", "service.cli"], workers_env, tmp / "workers.log",
                                           "/v2/health/ready")
    # The other scoring mode (bench/serving/serve_floors.py's OTHER_SCORING), in one and in N processes: wrk rows only.
    other = {"RANKER_SCORING_THREADS": str(OTHER_SCORING)}
    servers["other"] = ServerProcess([sys.executable, "-m", "service.cli"], {**env, **other}, tmp / "other.log",
                                     "/v2/health/ready")
    if args.workers_variant:
        servers["workers-other"] = ServerProcess(
            [sys.executable, "-m", "service.cli"],
            {**workers_env, **other, "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics-other")},
            tmp / "workers-other.log", "/v2/health/ready")
    if args.logging:  # the same server with the impression log on (bench/serving/serve_logging.py)
        for name, extra in logging_servers(tmp).items():
            servers[name] = ServerProcess([sys.executable, "-m", "service.cli"], {**env, **extra},
                                          tmp / f"{name}.log", "/v2/health/ready")
    if args.id_only:
        redis_env = {**env, "RANKER_FEATURE_STORE": "redis", "RANKER_REDIS_URL": args.redis.url,
                     "RANKER_REDIS_TIMEOUT": "0.5"}
        servers["redis"] = ServerProcess([sys.executable, "-m", "service.cli"], redis_env, tmp / "redis-server.log",
                                         "/v2/health/ready")
    for s in servers.values():
        s.wait_ready()
    return servers


def run(args: argparse.Namespace) -> tuple[list[SizeRow], dict, IdOnlyResult | None]:
    manifest = read_manifest(args.bundle)
    serving = load_serving(args.bundle, args.weights)  # in-process, for (b) and the stage timings
    rows, id_only = [], None
    args.id_only = not args.no_id_only and bool(manifest.lookups)
    with tempfile.TemporaryDirectory(prefix="serve-latency-") as tmp:
        servers = start_servers(args, Path(tmp))
        try:
            for size in args.sizes:
                bodies = [orjson.dumps(example_request(manifest, size, seed=s)) for s in range(DISTINCT_BODIES)]
                raw, raw70 = raw_session_run(serving, bodies[0], args.requests, args.duration)
                ours = measure_server(servers["ours"].port, bodies, args)
                naive = measure_server(servers["naive"].port, bodies, args) if size == FLOOR_SIZE else None
                workers = measure_server(servers["workers"].port, bodies, args) if "workers" in servers else None
                row = SizeRow(size, raw, raw70, ours, naive, workers)
                if size == FLOOR_SIZE:
                    row.wrk = {name: [run_wrk(servers[name].port, bodies[0], n, args.duration) for n in args.connections]
                               for name in WRK_SERVERS if name in servers}
                    same = ranking_of(servers["ours"].port, bodies[0]) == ranking_of(servers["naive"].port, bodies[0])
                    args.same_order.append(same)
                rows.append(row)
                print(f"measured {size} candidates", file=sys.stderr)
            if args.logging:
                args.logging_result = run_logging(args, manifest, servers, serving, Path(tmp))
            if args.id_only:
                id_only = run_id_only(args, manifest, servers, Path(tmp))
        finally:
            for s in servers.values():
                s.stop()
            if args.id_only:
                args.redis.stop()
        stage_size = FLOOR_SIZE if FLOOR_SIZE in args.sizes else args.sizes[0]
        stage_request = example_request(manifest, stage_size, seed=0)
        stages = stage_breakdown(serving, stage_request, args.requests, args.profile)
        stages["size"] = stage_size
        stages["gc"] = gc_pauses(serving, stage_request, args.requests)
    return rows, stages, id_only


def run_logging(args: argparse.Namespace, manifest, servers: dict[str, ServerProcess], serving,
                tmp: Path) -> serve_logging.LoggingResult:
    """Logging off ("ours") vs on ("logging") at FLOOR_SIZE candidates; the "logging" server is stopped here,
    so its files are published and counted."""
    bodies = [orjson.dumps(example_request(manifest, FLOOR_SIZE, seed=s)) for s in range(DISTINCT_BODIES)]
    ports = {"off": servers["ours"].port, "off, a second process": servers["logging-off-2"].port,
             "on": servers["logging"].port, "on, features none": servers["logging-none"].port}
    result = serve_logging.measure(ports, bodies[0], FLOOR_SIZE, args.logging_seconds, args.concurrency)
    answered, result.dropped = serve_logging.server_counts(ports["on"])
    result.rows_answered = int(answered) * FLOOR_SIZE
    servers.pop("logging").stop()
    servers.pop("logging-none").stop()
    servers.pop("logging-off-2").stop()
    result.rows_logged = serve_logging.logged_rows(tmp / "impressions-log")
    (result.offer_us, result.batch_us_per_record, result.batch_us_uncoded,
     result.compact_us_per_record) = serve_logging.in_process(
        serving, [orjson.dumps(example_request(manifest, FLOOR_SIZE, seed=s)) for s in range(64)], min(args.requests, 200))
    print(f"measured logging off vs on at {FLOOR_SIZE} candidates", file=sys.stderr)
    return result


def logging_servers(tmp: Path) -> dict[str, dict[str, str]]:
    """The servers with the impression log on: every feature kept, and none."""
    return {"logging": {"RANKER_LOG_DIR": str(tmp / "impressions-log")},
            "logging-none": {"RANKER_LOG_DIR": str(tmp / "impressions-log-none"), "RANKER_LOG_FEATURES": "none"},
            "logging-off-2": {}}  # the log off again, in its own process: the run's noise floor


def run_logging_only(args: argparse.Namespace) -> serve_logging.LoggingResult:
    manifest = read_manifest(args.bundle)
    serving = load_serving(args.bundle, args.weights)
    with tempfile.TemporaryDirectory(prefix="serve-logging-") as tmp:
        registry = Registry(Path(tmp) / "registry", manifest.model_name)
        registry.publish(args.bundle)
        env = {"RANKER_REGISTRY_ROOT": str(registry.root), "RANKER_MODEL_NAME": manifest.model_name,
               "RANKER_WEIGHTS_PATH": str(args.weights), "RANKER_MAX_CANDIDATES": str(FLOOR_SIZE)}
        servers = {name: ServerProcess([sys.executable, "-m", "service.cli"], {**env, **extra},
                                       Path(tmp) / f"{name}.log", "/v2/health/ready")
                   for name, extra in {"ours": {}, **logging_servers(Path(tmp))}.items()}
        try:
            for s in servers.values():
                s.wait_ready()
            return run_logging(args, manifest, servers, serving, Path(tmp))
        finally:
            for s in servers.values():
                s.stop()


def run_id_only(args: argparse.Namespace, manifest, servers: dict[str, ServerProcess], tmp: Path) -> IdOnlyResult:
    full, ids = id_only_bodies(manifest, snapshot_files(args.features), args.id_only_size, DISTINCT_BODIES)
    ports = {"embedded": servers["ours"].port, "redis": servers["redis"].port}
    result = measure_id_only(ports, full, ids, args.id_only_size, args.requests, args.duration)
    registry = Registry(tmp / "registry", manifest.model_name)
    result.in_process_us = lookup_in_process(registry, manifest, args.redis.url, ids[0], args.requests)
    print(f"measured id-only requests of {args.id_only_size} candidates", file=sys.stderr)
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def run_header(args: argparse.Namespace) -> str:
    cmd = " ".join(["python -m bench.serving.serve_latency", *sys.argv[1:]]) if sys.argv[1:] else "python -m bench.serving.serve_latency"
    load = " -> ".join(f"{a:.1f}" for a in args.load_average)
    return (f"Measured by `{cmd}` on {date.today().isoformat()} at commit `{_commit()}`, "
            f"{platform.machine()} with {_cpus()} cores (1-minute load average {load} from start to end of the run)")


def render(rows: list[SizeRow], stages: dict, args: argparse.Namespace) -> str:
    cmd = " ".join(["python -m bench.serving.serve_latency", *sys.argv[1:]]) if sys.argv[1:] else "python -m bench.serving.serve_latency"
    load = " -> ".join(f"{a:.1f}" for a in args.load_average)
    lines = [
        f"Measured by `{cmd}` on {date.today().isoformat()} at commit `{_commit()}`, "
        f"{platform.machine()} with {_cpus()} cores (1-minute load average {load} "
        "from start to end of the run; above ~1 other processes were competing for the cores and the "
        "tail latencies say more about them than about the servers), client and servers on the same",
        "machine (loopback). Latency is client-side, in ms: p50/p99 one request at a time; peak = closed loop "
        f"with {args.concurrency} connections; @70% = open loop at 70% of that server's peak, evenly spaced "
        "arrivals (p50, p99) and Poisson arrivals (p99 P.), latency counted from each scheduled send time.",
        "",
        "| candidates | server | p50 | p99 | peak req/s | peak cand/s | p50 @70% | p99 @70% | p99 @70% P. |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.size} | (b) raw session.run | {ms(r.raw.percentile(50))} | {ms(r.raw.percentile(99))} "
                     f"| {r.raw.throughput:.0f} | {r.raw.throughput * r.size:,.0f} | {ms(r.raw70.percentile(50))} "
                     f"| {ms(r.raw70.percentile(99))} | |")
        variants = [("(a) this server", r.ours)] + ([("(c) naive server", r.naive)] if r.naive else [])
        if r.workers2 is not None:
            variants.insert(1, (f"(a') this server, {args.workers_variant} processes", r.workers2))
        for name, s in variants:
            lines.append(f"| {r.size} | {name} | {ms(s.sequential.percentile(50))} | {ms(s.sequential.percentile(99))} "
                         f"| {s.peak.throughput:.0f} | {s.peak.throughput * r.size:,.0f} "
                         f"| {ms(s.at70.percentile(50))} | {ms(s.at70.percentile(99))} "
                         f"| {ms(s.at70_poisson.percentile(99))} |")
    agree = "the same" if all(args.same_order) else "NOT the same"
    lines += ["", f"(a) and (c) return {agree} order for the same {FLOOR_SIZE}-candidate request: the naive server "
              "is the same model and profile, served differently (it does not apply the manifest's calibration "
              "maps, so with a calibrated bundle the orders may differ).",
              "", *render_floors(rows, stages, args.workers_variant), "", *render_wrk(rows, args.workers_variant), "", *render_stages(stages, rows)]
    return "\n".join(lines)


def render_stages(stages: dict, rows: list[SizeRow]) -> list[str]:
    total = stages["total"]
    out = [f"Where the time goes in one {stages['size']}-candidate request: each stage of the server's "
           f"request path timed in-process ({stages['iterations']} runs; median and minimum), the whole path "
           "(`service.live.pipeline.rank`) timed the same way, and the client-side p50 over HTTP minus that.", "",
           "| stage | median µs | min µs | share of in-process (median) |", "|---|---:|---:|---:|"]
    for name, seconds in stages["parts"].items():
        out.append(f"| {name} | {seconds * 1e6:.0f} | {stages['parts_min'][name] * 1e6:.0f} | {seconds / total:.0%} |")
    out.append(f"| in-process total (`service.live.pipeline.rank`) | {total * 1e6:.0f} | {stages['total_min'] * 1e6:.0f} "
               "| 100% |")
    row = next((r for r in rows if r.size == stages["size"]), None)
    if row is not None:
        http = row.ours.sequential.percentile(50) - total
        shown = f"{http * 1e6:.0f}" if http > 0 else "n/a (in-process median above the HTTP p50: a noisy run)"
        out.append(f"| HTTP: client, loopback, uvicorn, FastAPI, body read, thread hop | {shown} | | |")
    gc_line = "; ".join(f"{k}: longest {v[0] * 1e3:.1f} ms, total {v[1] * 1e3:.0f} ms" for k, v in stages["gc"].items())
    out += ["", f"Cyclic GC pauses over {stages['iterations']} in-process requests ({gc_line}). A full "
            "collection walks every live object (app, model, weights) unless they were frozen; the server "
            "runs gc.freeze() after each model swap."]
    return out


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return out.stdout.strip() or "unknown"


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.tracing_only:
        forwarded = ["--bundle", str(args.bundle), "--weights", str(args.weights), "--requests", str(args.requests),
                     "--duration", str(args.duration), "--concurrency", str(args.concurrency), "--doc", str(args.doc)]
        serve_tracing.main([*forwarded, *(["--no-doc"] if args.no_doc else [])],
                           command=" ".join(["python bench/serve_latency.py", *sys.argv[1:]]))
        return
    if not (args.bundle / "manifest.json").exists():
        sys.exit(f"no bundle at {args.bundle}; run `make run` (or `ranker train configs/demo.yaml --out {args.bundle}`)")
    args.load_average = [os.getloadavg()[0]]
    args.same_order = []
    args.logging = not args.no_logging and (args.logging_only or FLOOR_SIZE in args.sizes)
    args.logging_result = None
    if args.logging_only:
        args.logging_result = run_logging_only(args)
        args.load_average.append(os.getloadavg()[0])
        write_logging(args)
        return
    rows, stages, id_only = run(args)
    args.load_average.append(os.getloadavg()[0])
    text = render(rows, stages, args)
    id_text = f"{run_header(args)}.\n\n" + "\n".join(render_id_only(id_only)) if id_only is not None else None
    print(text if id_text is None else f"{text}\n\n{id_text}")
    if not args.no_doc:
        write_section(SECTION, f"## Serving latency (`bench/serving/serve_latency.py`)\n\n{text}", args.doc)
        if id_text is not None:
            write_section(SECTION_ID_ONLY, "## Id-only requests: features from the feature store "
                          f"(`bench/serving/serve_latency.py`)\n\n{id_text}", args.doc)
        print(f"\nwritten to {args.doc}", file=sys.stderr)
    write_logging(args)


def write_logging(args: argparse.Namespace) -> None:
    """Print the impression log's rows and write its section (unless --no-doc)."""
    if args.logging_result is None:
        return
    text = f"{run_header(args)}.\n\n" + "\n".join(serve_logging.render(args.logging_result))
    print(text)
    if not args.no_doc:
        write_section(SECTION_LOGGING, f"## Impression log cost (`bench/serving/serve_latency.py`)\n\n{text}", args.doc)


if __name__ == "__main__":
    main()
