"""Where the server's CPU goes per request: py-spy samples of a real ranker-serve under wrk (issue 25).

One server process (the demo bundle, 500 candidates, defaults), loaded by wrk with one connection:
  1. wrk alone: requests/s, p50, and the process's CPU (utime + stime of every thread, /proc) per request;
  2. wrk again while py-spy samples every thread (`py-spy record --format raw`): each sample is put in
     one category by its innermost frame that names one (a numpy call inside the encoder is the
     encoder's; a prometheus_client call inside the pipeline is metrics'); samples of waiting
     threads (a worker parked on its condition, the event loop in epoll) are idle and left out;
  3. the same request's stages in a loop in-process (bench/serving/serve_stages.py), beside them.
The CPU per request of each category is its share of the busy samples times (1)'s CPU per request.
Writes its section of docs/BENCHMARKS.md (`serve-profile`).

    python -m bench.serving.serve_profile --bundle runs/demo-bundle        # ~1 min; needs py-spy (the bench extra)
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import orjson

from bench.doc_sections import DOC, write_section
from bench.serving.serve_processes import REPO, ServerProcess
from bench.serving.serve_stages import STAGES, load_serving, stage_breakdown
from bench.serving.wrk_load import WrkResult, run_wrk
from service.contract.bundle import read_manifest
from service.examples import example_request
from service.registry import Registry

SECTION = "serve-profile"
SIZE = 500
# (category, substrings of a frame "function (file:line)"); checked from the innermost frame outwards,
# the first frame that matches any rule decides. Order matters only within one frame.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("session.run (onnxruntime)", ("onnxruntime/",)),
    ("metrics (prometheus_client, service/metrics.py)", ("prometheus_client/", "service/metrics.py",
                                                         "pipeline.py:13", "observe (service/live/pipeline.py")),
    ("logging (access log, JSON lines)", ("logging/__init__", "service/logging.py")),
    ("impression log", ("service/impressions/",)),
    ("request id (uuid4)", ("uuid.py",)),
    ("parse + validate", ("service/contract/request_decoder.py", "service/contract/request.py", "msgspec",
                          "pydantic")),
    ("feature-store fill", ("service/feature_store/",)),
    ("encode", ("service/contract/features.py", "service/contract/layout.py", "service/contract/missing.py",
                "encode (service/live/model.py")),
    ("combine, calibrate, top-k", ("service/profiles.py", "service/contract/calibration.py", "top_k_order",
                                   "predict (service/live/model.py", "service/contract/bundle.py")),
    ("response body (orjson)", ("service/live/response.py",)),
    ("pipeline glue (service/live, service/api/rank.py)", ("service/live/", "service/api/")),
    ("middleware (service/app.py)", ("service/app.py", "service/errors.py")),
    ("thread hop (anyio worker threads)", ("anyio/", "concurrent/futures", "threading.py", "queue.py")),
    ("FastAPI + Starlette", ("fastapi/", "starlette/")),
    ("HTTP (uvicorn, httptools)", ("uvicorn/protocols", "httptools", "h11/")),
    ("event loop (asyncio)", ("asyncio/",)),
)
# Innermost frames of a thread that waits (not on CPU): a parked worker, the event loop in epoll.
IDLE = ("Condition.wait (threading.py", "Event.wait (threading.py", "Runner.run (asyncio/runners.py",
        "_worker (concurrent/futures", "Thread._bootstrap (threading.py")


@dataclass
class Profile:
    wrk: WrkResult
    cpu_per_request: float  # seconds
    samples: collections.Counter  # category -> busy samples
    frames: dict[str, collections.Counter]  # category -> its deciding frames' samples
    idle: int
    stages: dict


def category(frames: list[str]) -> tuple[str, str]:
    """(category, the frame that decided it) of one stack, innermost frame last."""
    for frame in reversed(frames):
        for name, needles in RULES:
            if any(n in frame for n in needles):
                return name, frame
    return "other", frames[-1]


def read_samples(path: Path) -> tuple[collections.Counter, dict[str, collections.Counter], int]:
    """py-spy's raw (collapsed) stacks -> busy samples per category, per deciding frame, and idle samples."""
    busy: collections.Counter = collections.Counter()
    frames: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    idle = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stack_frames = stack.split(";")
        if any(stack_frames[-1].startswith(i) for i in IDLE):
            idle += int(count)
            continue
        name, frame = category(stack_frames)
        busy[name] += int(count)
        frames[name][frame] += int(count)
    return busy, frames, idle


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, every thread) of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy (the bench extra: pip install -e '.[bench]')")
    return found


def measure(args: argparse.Namespace, tmp: Path) -> Profile:
    manifest = read_manifest(args.bundle)
    registry = Registry(tmp / "registry", manifest.model_name)
    registry.publish(args.bundle)
    env = {"RANKER_REGISTRY_ROOT": str(registry.root), "RANKER_MODEL_NAME": manifest.model_name,
           "RANKER_WEIGHTS_PATH": str(args.weights), "RANKER_MAX_CANDIDATES": str(SIZE),
           **dict(e.split("=", 1) for e in args.env)}
    body = orjson.dumps(example_request(manifest, SIZE, seed=0))
    server = ServerProcess([sys.executable, "-m", "service.cli"], env, tmp / "server.log", "/v2/health/ready")
    try:
        server.wait_ready()
        run_wrk(server.port, body, 1, 2)  # warm-up
        cpu0 = process_cpu(server.proc.pid)
        plain = run_wrk(server.port, body, 1, args.seconds)
        cpu = (process_cpu(server.proc.pid) - cpu0) / plain.requests
        stacks = tmp / "stacks.txt"
        load = threading.Thread(target=run_wrk, args=(server.port, body, 1, args.seconds + 2))
        load.start()
        subprocess.run([py_spy(), "record", "--pid", str(server.proc.pid), "--rate", str(args.rate), "--duration",
                        str(round(args.seconds)), "--format", "raw", "--output", str(stacks)],
                       check=True, capture_output=True, timeout=args.seconds + 60)
        load.join()
    finally:
        server.stop()
    if args.keep_stacks is not None:
        shutil.copy(stacks, args.keep_stacks)
    busy, frames, idle = read_samples(stacks)
    serving = load_serving(args.bundle, args.weights)
    stages = stage_breakdown(serving, example_request(manifest, SIZE, seed=0), args.iterations)
    return Profile(plain, cpu, busy, frames, idle, stages)


def render(p: Profile, command: str) -> str:
    total = sum(p.samples.values())
    rows = [f"Produced by `{command}` on {date.today()} at commit `{_commit()}`, {platform.machine()} with "
            f"{os.cpu_count()} cores (1-minute load average {os.getloadavg()[0]:.1f} at the end).", "",
            f"One server process, {SIZE} candidates per request, wrk with one connection: "
            f"{p.wrk.throughput:.0f} req/s, p50 {p.wrk.p50 * 1000:.2f} ms; the process spent "
            f"**{p.cpu_per_request * 1000:.2f} ms of CPU per request** (every thread, /proc). py-spy's "
            f"{total:,} busy samples of every thread ({p.idle:,} more were waiting threads, left out) put each "
            "in the category of its innermost frame that names one; a category's CPU per request is its share "
            "of the busy samples times that figure.", "",
            "| where | share of busy samples | CPU per request (ms) | its most sampled frames |", "|---|---:|---:|---|"]
    for name, n in p.samples.most_common():
        top = ", ".join(f"`{f}` {k / n:.0%}" for f, k in p.frames[name].most_common(2))
        rows.append(f"| {name} | {n / total:.1%} | {n / total * p.cpu_per_request * 1000:.2f} | {top} |")
    parts = p.stages["parts"]
    rows += ["", f"The same request in a loop in-process (bench/serving/serve_stages.py, median of "
             f"{p.stages['iterations']}): " + "; ".join(f"{name.split(' (')[0]} {parts[name] * 1e6:.0f} µs"
                                                         for name in STAGES)
             + f"; `pipeline.rank` whole {p.stages['total'] * 1e6:.0f} µs; bare `session.run` "
             f"{p.stages['raw'] * 1e6:.0f} µs."]
    return "\n".join(rows)


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--weights", type=Path, default=REPO / "configs" / "weights.yaml")
    p.add_argument("--seconds", type=float, default=12.0, help="seconds of wrk per phase")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--iterations", type=int, default=300, help="in-process loop iterations")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="a server setting for this run (repeatable), e.g. RANKER_LOG_DIR=/tmp/log")
    p.add_argument("--keep-stacks", type=Path, help="copy py-spy's raw stacks here")
    p.add_argument("--no-doc", action="store_true", help="print only; do not write docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="serve-profile-") as tmp:
        profile = measure(args, Path(tmp))
    text = render(profile, "python -m bench.serving.serve_profile --bundle runs/demo-bundle")
    print(text)
    if not args.no_doc:
        write_section(SECTION, f"## Where a request's CPU goes (`bench/serving/serve_profile.py`)\n\n{text}", DOC)


if __name__ == "__main__":
    main()
