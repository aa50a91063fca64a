"""int8 against fp32 for the demo model: the holdout gate's numbers and session.run time, side by side.

Trains the demo spec (configs/demo.yaml, `--epochs` passes), exports the fp32 bundle, then quantizes it
as `ranker publish --quantize` does, once per method (training/bundle/requantize.py: dynamic, and static
calibrated on training rows; the gate decides whether the int8 graph may be served). Times the fp32 graph
against both int8 graphs on one request at each candidate count, the three interleaved in one loop, one
thread (the server's SessionOptions). Writes the section `int8` of docs/BENCHMARKS.md.

    python -m bench.serving.int8_cost                                   # ~2 min
    python -m bench.serving.int8_cost --epochs 1 --sizes 500 --no-doc  # smoke
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import onnxruntime as ort
import orjson

from bench.doc_sections import DOC, write_section
from bench.serving.serve_latency import _commit, _cpus
from bench.serving.serve_stages import load_serving
from service.contract.bundle import MODEL_FILE, SessionConfig, read_manifest
from service.examples import example_request

REPO = Path(__file__).resolve().parents[2]
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


METHODS = ("dynamic", "static")


def quantize_both(args: argparse.Namespace, out: Path) -> tuple[Path, dict[str, dict], dict[str, Path]]:
    """(fp32 bundle, {method: gate record}, {method: int8 graph}) of one trained model."""
    from training.bundle.export import export_bundle
    from training.bundle.requantize import QuantizeRefused, quantize_bundle, training_calibration
    from training.fit.train import train
    from training.spec import load_spec

    spec = load_spec(args.spec, data_path=args.data)
    spec.train.epochs, spec.train.threads = args.epochs, 1
    fp32 = export_bundle(train(spec, progress=False, eval_test=True), out / "fp32")
    gates, graphs = {}, {}
    for method in METHODS:
        try:
            bundle = quantize_bundle(fp32, spec, method, out / method)
            gates[method], graphs[method] = read_manifest(bundle).metrics["int8"], bundle / MODEL_FILE
        except QuantizeRefused as e:  # the graph the gate judged is timed all the same
            from training.bundle.quantize import quantize_graph
            from training.data import splits as S

            gates[method], graphs[method] = e.gate, out / f"{method}.onnx"
            calibration = training_calibration(S.load_splits(spec).train, read_manifest(fp32)) if method == "static" else ()
            quantize_graph(fp32 / MODEL_FILE, graphs[method], method, calibration)
    return fp32, gates, graphs


def timings(fp32: Path, graphs: list[Path], sizes: list[int], runs: int) -> dict[int, list[list[float]]]:
    """{candidates: one list of session.run seconds per graph (fp32 first)}, the graphs interleaved."""
    serving = load_serving(fp32, REPO / "configs" / "weights.yaml")
    sessions = [ort.InferenceSession(str(p), SessionConfig().options(), providers=["CPUExecutionProvider"])
                for p in (fp32 / MODEL_FILE, *graphs)]
    out = {}
    for size in sizes:
        inputs = serving.model.encode(serving.model.parse(orjson.dumps(example_request(serving.model.manifest, size))))
        times: list[list[float]] = [[] for _ in sessions]
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


def _value(c: dict, key: str) -> str:
    return f"{c[key]:.4f}" if key in c else ""


def render(gates: dict[str, dict], times: dict, args: argparse.Namespace, load: list[float]) -> str:
    cmd = " ".join(["python -m bench.serving.int8_cost", *sys.argv[1:]])
    rows = next(iter(gates.values()))["rows"]
    lines = [f"Measured by `{cmd}` on {date.today().isoformat()} at commit `{_commit()}`, {_cpus()} cores (1-minute "
             f"load average {load[0]:.1f} -> {load[1]:.1f}: a shared machine; the graphs were interleaved, so "
             f"their ratios are what to read). The demo model trained for {args.epochs} epoch(s) on the demo data, "
             f"then quantized as `ranker publish --quantize METHOD` does; gate on its {rows:,} holdout (test) "
             "rows, heads served calibrated.", ""]
    lines += [" ".join(f"{m}: **{'PASSED' if g['passed'] else 'FAILED'}**." for m, g in gates.items()), "",
              "| check | fp32 | " + " | ".join(f"{m} int8 | within bound" for m in gates) + " |",
              "|---|---:|" + "---:|---|" * len(gates)]
    for name, c in next(iter(gates.values()))["checks"].items():
        cells = [f"{_value(g['checks'][name], 'int8')} | {'yes' if g['checks'][name]['ok'] else 'NO'}" for g in gates.values()]
        lines.append(f"| {name} | {_value(c, 'fp32')} | " + " | ".join(cells) + " |")
    lines += ["", "| candidates | fp32 ms (median, min) | " + " | ".join(f"{m} ms (median, min) | {m} / fp32"
                                                              for m in gates) + " |",
              "|---:|---:|" + "---:|---:|" * len(gates)]
    ratios: dict[str, list[float]] = {m: [] for m in gates}
    for size, (a, *quantized) in times.items():
        cells = []
        for m, b in zip(gates, quantized, strict=True):
            ratios[m].append(statistics.median(b) / statistics.median(a))
            cells.append(f"{statistics.median(b) * 1e3:.3f}, {min(b) * 1e3:.3f} | {ratios[m][-1]:.2f}")
        lines.append(f"| {size:,} | {statistics.median(a) * 1e3:.3f}, {min(a) * 1e3:.3f} | " + " | ".join(cells) + " |")
    lines.append("")
    for m, r in ratios.items():
        verdict = "faster" if max(r) < 1 else "not faster at every size" if min(r) < 1 else "NOT faster"
        lines.append(f"- {m} int8 is {verdict} than fp32 on this CPU ({platform_cpu()}): ratios {min(r):.2f}-{max(r):.2f}.")
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
    with tempfile.TemporaryDirectory(prefix="int8-cost-") as tmp:
        fp32, gates, graphs = quantize_both(args, Path(tmp))
        times = timings(fp32, [graphs[m] for m in METHODS], args.sizes, args.runs)
    load.append(os.getloadavg()[0])
    text = render(gates, times, args, load)
    print(text)
    if not args.no_doc:
        write_section(SECTION, f"## int8: dynamic and static quantization against fp32 (`bench/serving/int8_cost.py`)\n\n{text}", args.doc)


if __name__ == "__main__":
    main()
