"""Training on a busy machine: the demo training alone and beside one competing CPU-bound process, for each
thread choice (issue 21, item 6).

Each run is a fresh `ranker train` process on the demo spec (--rows rows, --epochs epochs, no GBDT), timed
as a whole command (what a user waits for) and by its fit's samples/s (train_log.jsonl). The competitor is
a pure-Python busy loop started before the run and stopped after it. Runs interleave over --rounds rounds.

    threads     1 (the default on 2 cores: one fewer than the usable cores) and every usable core (the old
                default), and the default itself (train.threads left out)
    verdicts    busy / alone wall time per choice (floor: <= 2.5x for the default), and the default alone vs
                every core alone (floor: <= 1.10x: no more than 10 % slower on a quiet machine)

    .venv/bin/python -m bench.training.train_contention --rows 100000 --epochs 2 --rounds 2
    .venv/bin/python -m bench.training.train_contention --rows 5000 --epochs 1 --rounds 1 --no-write-doc   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bench.doc_sections import write_section
from bench.training.train_scale import CACHE, demo_data
from training.distributed.launch import local_threads, usable_cores

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results" / "train_contention.json"
BUSY_LOOP = "while True: pass"
MAX_RATIO_BUSY = 2.5
MAX_RATIO_QUIET = 1.10


def spec_file(data: Path, epochs: int, threads: int | None, out: Path) -> Path:
    raw = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    raw["data"]["path"] = str(data)
    raw["eval"].update(weights=str(REPO / "configs" / "weights.yaml"), baseline="none")
    raw["train"].update(epochs=epochs, early_stopping_patience=epochs)
    if threads is not None:
        raw["train"]["threads"] = threads
    out.write_text(yaml.safe_dump(raw))
    return out


def run(spec: Path, work: Path, busy: bool) -> dict:
    """One `ranker train`, beside a busy loop when `busy`: wall seconds and the fit's mean samples/s."""
    competitor = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)  # the competitor is running before training starts
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "training.cli", "train", str(spec), "--out", str(work / "b"),
                        "--no-progress"], check=True, capture_output=True, cwd=REPO)
        wall = time.perf_counter() - t0
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    log = [json.loads(line) for line in (work / "b.logs" / "train_log.jsonl").read_text().splitlines()]
    return {"wall_seconds": round(wall, 2), "samples_per_second": round(statistics.mean(e["samples_per_second"] for e in log), 1)}


def measure(args: argparse.Namespace) -> dict:
    data = demo_data(args.rows, args.cache)
    cores = usable_cores()
    choices = {"1 thread": 1, f"{cores} threads (every core)": cores, f"default ({local_threads(None)})": None}
    runs: dict[str, dict[str, list[dict]]] = {c: {"alone": [], "busy": []} for c in choices}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, threads in choices.items():
                spec = spec_file(data, args.epochs, threads, Path(tmp) / "spec.yaml")
                for where in ("alone", "busy"):
                    runs[name][where].append(run(spec, Path(tmp), where == "busy"))
                    print(f"round {r + 1} {name} {where}: {runs[name][where][-1]} (load {os.getloadavg()[0]:.1f})",
                          flush=True)
    return {"rows": args.rows, "epochs": args.epochs, "rounds": args.rounds, "cores": cores, "runs": runs,
            "meta": {"command": " ".join(["python -m bench.training.train_contention", *sys.argv[1:]]),
                     "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "commit": _commit(),
                     "load_at_end": round(os.getloadavg()[0], 1)}}


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return done.stdout.strip() or "unknown"


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def render(saved: dict) -> str:
    m, runs = saved["meta"], saved["runs"]
    default = next(name for name in runs if name.startswith("default"))
    every = next(name for name in runs if "every core" in name)
    lines = ["## Training on a busy machine (`bench/training/train_contention.py`)", "",
             f"Command: `{m['command']}` on {m['date']} at {m['commit']}; {saved['cores']} usable cores; 1-minute "
             f"load {m['load_at_end']} at the end. Each run is a fresh `ranker train` of the demo spec on "
             f"{saved['rows']:,} rows, {saved['epochs']} epoch(s), no GBDT, alone or beside one pure-Python busy loop; "
             f"runs interleaved over {saved['rounds']} round(s); medians (wall time of the whole command; the fit's "
             "samples/s).", "",
             "| threads | alone: wall s | alone: samples/s | busy: wall s | busy: samples/s | busy / alone |",
             "|---|---|---|---|---|---|"]
    for name, r in runs.items():
        ratio = median(r["busy"], "wall_seconds") / median(r["alone"], "wall_seconds")
        lines.append(f"| {name} | {median(r['alone'], 'wall_seconds'):.1f} | {median(r['alone'], 'samples_per_second'):,.0f} "
                     f"| {median(r['busy'], 'wall_seconds'):.1f} | {median(r['busy'], 'samples_per_second'):,.0f} "
                     f"| {ratio:.2f}x |")
    busy = median(runs[default]["busy"], "wall_seconds") / median(runs[default]["alone"], "wall_seconds")
    # Alone, any slowdown is someone else's load: compare the least disturbed run of each (the fastest).
    quiet = min(r["wall_seconds"] for r in runs[default]["alone"]) / min(r["wall_seconds"] for r in runs[every]["alone"])
    lines += ["", f"- The default beside a busy process: {busy:.2f}x its time alone (floor <= {MAX_RATIO_BUSY}x): "
                  f"{'PASS' if busy <= MAX_RATIO_BUSY else 'FAIL'}.",
              f"- The default alone vs every core alone (the old default), fastest run of each: {quiet:.2f}x "
              f"(floor <= {MAX_RATIO_QUIET}x): "
              f"{'PASS' if quiet <= MAX_RATIO_QUIET else 'FAIL'}."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--write-doc", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--replot", action="store_true", help="re-render docs/BENCHMARKS.md from the saved results")
    args = p.parse_args()
    saved = json.loads(RESULTS.read_text()) if args.replot else measure(args)
    print(render(saved))
    if args.write_doc:
        if not args.replot:
            RESULTS.write_text(json.dumps(saved, indent=1))
        write_section("train-contention", render(saved))


if __name__ == "__main__":
    main()
