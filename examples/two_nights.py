"""Two nights of production, scripted: retrain, gate, promote, swap, with the server answering throughout.

    night 1  day-1 demo data -> `ranker retrain` -> v1 (first model: absolute floors) -> CURRENT
             a real `ranker-serve` process starts on 127.0.0.1 and serves v1
    night 2  day-2 data with a shifted distribution (demo drift) -> `ranker retrain --warm-start`
             -> v2 gated against v1 on the same day-2 holdout -> promoted -> the server swaps to v2
             while client threads keep sending /v1/rank requests (bounded in count and time)

Prints both nights' gate reports, requires zero failed requests, writes a summary JSON to --out and
(with --write-benchmarks) the two-nights section of docs/BENCHMARKS.md.

    .venv/bin/python examples/two_nights.py --out runs/two-nights --write-benchmarks
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the server-process helper the end-to-end tests use
sys.path.insert(0, str(REPO))  # bench.doc_sections

from retrain_helpers import shuffle_training_labels  # noqa: E402
from server_helpers import ServerProcess  # noqa: E402

from bench.doc_sections import write_section  # noqa: E402
from service.contract.bundle import read_manifest  # noqa: E402
from service.examples import example_request  # noqa: E402
from service.registry import Registry  # noqa: E402
from training.data.demo import DemoConfig, day_after, write_demo  # noqa: E402
from training.spec import load_spec  # noqa: E402

SECTION = "two-nights"


@dataclass
class Traffic:
    """Bounded client threads: each sends requests until stopped, or max_requests, or max_seconds."""

    url: str
    bodies: list[dict]
    clients: int = 2
    pause: float = 0.01
    max_requests: int = 200_000
    max_seconds: float = 900.0
    statuses: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    first_seen: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.clients)]

    def start(self) -> Traffic:
        self._t0 = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10.0) as c:
            n = 0
            while not self._stop.is_set() and time.monotonic() - self._t0 < self.max_seconds:
                body = self.bodies[(i + n * self.clients) % len(self.bodies)]
                t = time.perf_counter()
                try:
                    r = c.post("/v1/rank", json=body)
                    status, version = r.status_code, r.json().get("model_version") if r.status_code == 200 else None
                except httpx.HTTPError as e:
                    status, version = type(e).__name__, None
                with self._lock:
                    self.statuses[status] += 1
                    self.versions[version] += 1
                    self.latencies.append(time.perf_counter() - t)
                    if version is not None:
                        self.first_seen.setdefault(version, time.time())  # wall clock, as history.jsonl
                    if sum(self.statuses.values()) >= self.max_requests:
                        self._stop.set()
                n += 1
                time.sleep(self.pause)

    def failed(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200)


def night(name: str, spec_path: Path, registry: Path, work: Path, *args: str) -> dict:
    """One `ranker retrain` process, as the scheduler runs it; returns its exit code and report."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "training.cli", "retrain", str(spec_path), "--registry", str(registry),
           "--work-dir", str(work / name), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"{name}: ranker retrain failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    report = json.loads((work / name / "gate_report.json").read_text())
    print(proc.stdout)
    return {"exit_code": proc.returncode, "seconds": round(time.perf_counter() - t0, 1), "report": report,
            "markdown": (work / name / "gate_report.md").read_text()}


def write_data(data: Path, rows: int, drift: float) -> tuple[DemoConfig, DemoConfig]:
    day1 = DemoConfig(rows=rows, seed=0, days=14)
    day2 = DemoConfig(rows=rows, seed=0, days=14, drift=drift, start=day_after(day1))
    write_demo(data, day1)
    write_demo(data, day2)
    return day1, day2


def quick_spec(out: Path, data: Path, epochs: int) -> Path:
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["data"]["path"] = str(data)
    raw["train"].update(epochs=epochs, threads=1)
    path = out / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run(args: argparse.Namespace) -> dict:
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data, registry, work = out / "data", out / "registry", out / "work"
    day1, day2 = write_data(data, args.rows, args.drift)
    spec_path = quick_spec(out, data, args.epochs)
    boundary = day2.start.date().isoformat()

    n1 = night("night1", spec_path, registry, work, "--end", boundary)
    reg = Registry(registry, load_spec(spec_path).name)
    if reg.current() != 1:
        raise RuntimeError(f"night 1 did not promote v1: {n1['report']['failed']}")
    server = ServerProcess({"RANKER_REGISTRY_ROOT": str(registry), "RANKER_MODEL_NAME": reg.model_name,
                            "RANKER_WEIGHTS_PATH": str(REPO / "configs" / "weights.yaml"),
                            "RANKER_POLL_INTERVAL": str(args.poll)}, out / "server.log").wait_ready(60)
    manifest = read_manifest(reg.bundle_dir(1))
    bodies = [example_request(manifest, args.candidates, seed=s) for s in range(16)]
    traffic = Traffic(server.url, bodies, clients=args.clients)
    try:
        traffic.start()
        time.sleep(2.0)
        n2 = night("night2", spec_path, registry, work, "--start", boundary, *(["--warm-start"] if args.warm else []))
        swapped = n2["exit_code"] == 0 and wait_for(lambda: 2 in traffic.first_seen, args.poll * 4 + 30)
        time.sleep(2.0)  # keep the load on after the swap
        if args.bad_night:  # a broken pipeline: training labels shuffled; the gates must stop it
            corrupted = shuffle_training_labels(data, out / "data-corrupted")
            n3 = night("night3", spec_path, registry, work, "--data", str(corrupted), "--start", boundary)
            time.sleep(args.poll * 3)  # a served v3 would show up here
    finally:
        traffic.stop()
        server.stop()
    promoted_at = next((datetime.fromisoformat(h["at"]).timestamp() for h in reg.history() if h["version"] == 2), None)
    summary = summarize(args, n1, n2, traffic, promoted_at if swapped else None)
    if args.bad_night:
        summary["nights"]["night3"] = night_summary(n3)
        summary["reports"]["night3"] = n3["markdown"]
        summary["current_after"] = reg.current()
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def gate_metrics(report: dict) -> dict:
    return {f"{g['gate']}:{g['subject']}": {"value": g["value"], "op": g["op"], "threshold": g["threshold"],
                                            "passed": g["passed"]} for g in report["gates"]}


def night_summary(n: dict) -> dict:
    r = n["report"]
    return {"exit_code": n["exit_code"], "seconds": n["seconds"], "decision": r["decision"], "version": r["version"],
            "compared_with": r["compared_with"], "failed": r["failed"], "gates": gate_metrics(r)}


def summarize(args: argparse.Namespace, n1: dict, n2: dict, traffic: Traffic, promoted_at: float | None) -> dict:
    lat = np.array(traffic.latencies) * 1000
    swap = traffic.first_seen.get(2, 0.0) - promoted_at if promoted_at is not None else None
    return {
        "command": " ".join(["examples/two_nights.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).date().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=REPO).stdout.strip(),
        "settings": {"rows_per_period": args.rows, "drift": args.drift, "epochs": args.epochs,
                     "warm_start": args.warm, "poll_interval": args.poll, "clients": args.clients,
                     "candidates": args.candidates},
        "nights": {"night1": night_summary(n1), "night2": night_summary(n2)},
        "traffic": {"requests": int(sum(traffic.statuses.values())), "failed": traffic.failed(),
                    "statuses": {str(k): v for k, v in traffic.statuses.items()},
                    "by_version": {str(k): v for k, v in traffic.versions.items()},
                    "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))}
                    if len(lat) else {},
                    "swap_seconds_after_promotion": swap},
        "reports": {"night1": n1["markdown"], "night2": n2["markdown"]},
    }


def benchmarks_section(s: dict) -> str:
    n1, n2, n3, t = s["nights"]["night1"], s["nights"]["night2"], s["nights"].get("night3"), s["traffic"]
    cfg = s["settings"]

    def metric_rows(night: dict) -> list[str]:
        rows = []
        for key, g in night["gates"].items():
            if key.split(":")[0] in ("metric", "floor", "topk_overlap"):
                rows.append(f"{key} {g['value']:.4g} ({g['op']} {g['threshold']:.4g}, "
                            f"{'pass' if g['passed'] else 'FAIL'})")
        return rows

    swap = t["swap_seconds_after_promotion"]
    lines = [
        "## Two nights: retrain, gate, promote, swap under traffic",
        "",
        f"Produced by `.venv/bin/python {s['command']}` on {s['date']} at commit `{s['commit']}` (2 cores).",
        f"Demo data: {cfg['rows_per_period']:,} rows for days 1-14, then {cfg['rows_per_period']:,} rows for days 15-28 "
        f"with `drift={cfg['drift']}` (tastes, clickbait and popularity shifted); {cfg['epochs']} epochs; night 2 "
        f"{'warm-started from v1' if cfg['warm_start'] else 'trained from scratch'}. Server: one `ranker-serve` "
        f"process polling every {cfg['poll_interval']} s; {cfg['clients']} client threads sending "
        f"{cfg['candidates']}-candidate `/v1/rank` requests from before night 2 to after night 3.",
        "",
        "| night | window | decision | exit | seconds | compared with | gates |",
        "|---|---|---|---|---|---|---|",
        f"| 1 | days 1-14 | {n1['decision']} v{n1['version']} | {n1['exit_code']} | {n1['seconds']} | nothing "
        f"(absolute floors) | {'; '.join(metric_rows(n1))} |",
        f"| 2 | days 15-28 | {n2['decision']} v{n2['version']} | {n2['exit_code']} | {n2['seconds']} | "
        f"v{n2['compared_with']} on the same holdout | {'; '.join(metric_rows(n2))} |",
        *([f"| 3 | days 15-28, training labels shuffled | {n3['decision']} v{n3['version']} (not CURRENT) | "
           f"{n3['exit_code']} | {n3['seconds']} | v{n3['compared_with']} on the same holdout | "
           f"{'; '.join(metric_rows(n3))} |"] if n3 else []),
        "",
        f"Traffic during nights 2{' and 3' if n3 else ''}: {t['requests']:,} requests, **{t['failed']} failed**, served by version "
        f"{', '.join(f'v{k}: {v:,}' for k, v in sorted(t['by_version'].items()))}; latency p50 "
        f"{t['latency_ms'].get('p50', 0):.1f} ms, p99 {t['latency_ms'].get('p99', 0):.1f} ms (while training shared "
        f"the 2 cores); first v2 response {swap:.2f} s after CURRENT moved to v2 (history.jsonl)."
        if swap is not None else f"Traffic: {t['requests']:,} requests, {t['failed']} failed; v2 was never served.",
        "",
        "<details><summary>Night 1 gate report</summary>",
        "",
        s["reports"]["night1"].replace("# Retrain report", "### Retrain report"),
        "</details>",
        "",
        "<details><summary>Night 2 gate report</summary>",
        "",
        s["reports"]["night2"].replace("# Retrain report", "### Retrain report"),
        "</details>",
        *(["", "<details><summary>Night 3 gate report</summary>", "",
           s["reports"]["night3"].replace("# Retrain report", "### Retrain report"), "</details>"] if n3 else []),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "two-nights")
    parser.add_argument("--rows", type=int, default=40_000, help="demo rows per 14-day period")
    parser.add_argument("--drift", type=float, default=0.5, help="distribution shift of the second period")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True, help="night 2 warm start")
    parser.add_argument("--poll", type=float, default=1.0, help="server poll interval, seconds")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--bad-night", action=argparse.BooleanOptionalAction, default=True,
                        help="a third night with shuffled training labels, which the gates must reject")
    parser.add_argument("--write-benchmarks", action="store_true", help="rewrite the two-nights section")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    summary = run(args)
    print(json.dumps({k: v for k, v in summary.items() if k != "reports"}, indent=2, default=str))
    ok = (summary["nights"]["night2"]["exit_code"] == 0 and summary["traffic"]["failed"] == 0
          and summary["traffic"]["swap_seconds_after_promotion"] is not None)
    if args.bad_night:
        ok = ok and summary["nights"]["night3"]["exit_code"] == 3 and summary["current_after"] == 2 \
            and "3" not in summary["traffic"]["by_version"]
    if args.write_benchmarks:
        write_section(SECTION, benchmarks_section(summary))
    print("two nights:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
