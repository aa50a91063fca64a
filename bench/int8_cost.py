"""int8 against fp32 for the demo model: the holdout gate's numbers and session.run time, side by side.

Trains the demo spec (configs/demo.yaml, `--epochs` passes), exports it with `train.quantize: dynamic`
(training/bundle/quantize.py: the gate decides which graph the bundle serves), then times the fp32
graph against its dynamic-int8 quantization on one request at each candidate count, the two
interleaved in one loop, one thread (the server's SessionOptions). Writes the section `int8` of
docs/BENCHMARKS.md.

    python bench/int8_cost.py                                   # ~2 min
    python bench/int8_cost.py --epochs 1 --sizes 500 --no-doc  # smoke
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import onnxruntime as ort
import orjson
from doc_sections import DOC, write_section
from serve_latency import _commit, _cpus
from serve_stages import load_serving

from service.contract.bundle import MODEL_FILE, SessionConfig, read_manifest
from service.examples import example_request

REPO = Path(__file__).resolve().parents[1]
SECTION = "int8"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", type=Path, default=REPO / "configs" / "demo.yaml")
    p.add_argument("--data", type=str, default=str(REPO / "data" / "demo"), help="demo data (`ranker demo-data`)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 1000, 5000])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--doc", type=Path, default=DOC)
    p.add_argument("--no-doc", action="store_true")
    return p.parse_args(argv)


def export_both(args: argparse.Namespace, out: Path) -> tuple[Path, Path]:
    """(fp32 bundle, bundle exported with train.quantize: dynamic) of one trained model."""
    from training.bundle.export import export_bundle
    from training.fit.train import train
    from training.spec import load_spec

    spec = load_spec(args.spec, data_path=args.data)
    spec.train.epochs, spec.train.threads = args.epochs, 1
    trained = train(spec, progress=False, eval_test=True)
    fp32 = export_bundle(trained, out / "fp32")
    spec8 = spec.model_copy(deep=True)
    spec8.train.quantize = "dynamic"
    return fp32, export_bundle(dataclasses.replace(trained, spec=spec8), out / "int8")


def timings(fp32: Path, int8_graph: Path, sizes: list[int], runs: int) -> dict[int, tuple[list[float], list[float]]]:
    serving = load_serving(fp32, REPO / "configs" / "weights.yaml")
    sessions = [ort.InferenceSession(str(p), SessionConfig().options(), providers=["CPUExecutionProvider"])
                for p in (fp32 / MODEL_FILE, int8_graph)]
    out = {}
    for size in sizes:
        inputs = serving.model.encode(serving.model.parse(orjson.dumps(example_request(serving.model.manifest, size))))
        times: tuple[list[float], list[float]] = ([], [])
        for s in sessions:
            s.run(None, inputs)
        start = time.perf_counter()
        for _ in range(runs):
            for s, t in zip(sessions, times, strict=True):
                t0 = time.perf_counter()
                s.run(None, inputs)
                t.append(time.perf_counter() - t0)
            if time.perf_counter() - start > 10:
                break
        out[size] = times
    return out


def render(gate: dict, times: dict, args: argparse.Namespace, load: list[float]) -> str:
    cmd = " ".join(["python bench/int8_cost.py", *sys.argv[1:]])
    lines = [f"Measured by `{cmd}` on {date.today().isoformat()} at commit `{_commit()}`, {_cpus()} cores (1-minute "
             f"load average {load[0]:.1f} -> {load[1]:.1f}: a shared machine; the two graphs were interleaved, so "
             f"their ratio is what to read). The demo model trained for {args.epochs} epoch(s) on the demo data; gate on "
             f"its {gate['rows']:,} holdout (test) rows, heads served calibrated.", "",
             f"Gate: **{'PASSED: the bundle serves the int8 graph' if gate['passed'] else 'FAILED: the bundle serves fp32'}**",
             "", "| check | fp32 | int8 | within bound |", "|---|---:|---:|---|"]
    for name, c in gate["checks"].items():
        fp = f"{c['fp32']:.4f}" if "fp32" in c else ""
        lines.append(f"| {name} | {fp} | {c.get('int8', float('nan')):.4f} | {'yes' if c['ok'] else 'NO'} |")
    lines += ["", "| candidates | fp32 ms (median, min) | int8 ms (median, min) | int8 / fp32 (medians) |",
              "|---:|---:|---:|---:|"]
    for size, (a, b) in times.items():
        lines.append(f"| {size:,} | {statistics.median(a) * 1e3:.3f}, {min(a) * 1e3:.3f} | "
                     f"{statistics.median(b) * 1e3:.3f}, {min(b) * 1e3:.3f} | "
                     f"{statistics.median(b) / statistics.median(a):.2f} |")
    ratios = [statistics.median(b) / statistics.median(a) for a, b in times.values()]
    verdict = ("faster" if max(ratios) < 1 else "not faster at every size" if min(ratios) < 1 else "NOT faster")
    lines += ["", f"int8 is {verdict} on this CPU ({platform_cpu()}); ratios {min(ratios):.2f}-{max(ratios):.2f}."]
    return "\n".join(lines)


def platform_cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load = [os.getloadavg()[0]]
    from training.bundle.quantize import quantize_graph

    with tempfile.TemporaryDirectory(prefix="int8-cost-") as tmp:
        fp32, int8_bundle = export_both(args, Path(tmp))
        gate = read_manifest(int8_bundle).metrics["int8"]
        int8_graph = Path(tmp) / "int8.onnx"
        quantize_graph(fp32 / MODEL_FILE, int8_graph)  # the graph the gate judged (same weights, same tool)
        times = timings(fp32, int8_graph, args.sizes, args.runs)
    load.append(os.getloadavg()[0])
    text = render(gate, times, args, load)
    print(text)
    if not args.no_doc:
        write_section(SECTION, f"## int8: dynamic quantization against fp32 (`bench/int8_cost.py`)\n\n{text}", args.doc)


if __name__ == "__main__":
    main()
