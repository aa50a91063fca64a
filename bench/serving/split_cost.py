"""The split graph (user/context once per request) against the unsplit one: FLOPs and session.run time.

For three model shapes, each built from the demo spec on a few thousand demo rows (weights as
initialized: FLOPs and time do not depend on their values; the export's parity check still holds
the split graph to 1e-5 of the PyTorch model):
  demo        configs/demo.yaml's model (4 experts x (128, 64), 16-dim embeddings)
  user-heavy  the demo model plus a 64-dim user-history vector (64 numeric user features)
  user-heavy-256  the same with a 256-dim user-history vector: with 64 dims the matrix FLOPs drop only
              1.9x (the experts' second layers and the towers stay per candidate), so a 2x time
              drop cannot be seen there; 256 dims is the size of e.g. a watch-history embedding
  large       the demo model with 8 experts x (256, 128)
it exports the unsplit and the split graph and, at each candidate count, counts their matrix
FLOPs (2·M·K·N per MatMul/Gemm, from ONNX shape inference at that batch) and times session.run
on one request's inputs, the two graphs interleaved in one loop (same SessionOptions as the server).

    python -m bench.serving.split_cost                          # prints the table (also run by serve_latency.py)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq

from service.contract.bundle import SessionConfig
from service.contract.features import CATEGORICAL_INPUT, NUMERIC_INPUT
from service.contract.layout import one_request, split_columns

REPO = Path(__file__).resolve().parents[2]
SHAPES = ("demo", "user-heavy", "user-heavy-256", "large")
HISTORY_DIMS = {"user-heavy": 64, "user-heavy-256": 256}  # shape -> numeric user-history features
ROWS = 4_000


@dataclass
class Cell:
    """One (shape, candidates) measurement: FLOPs and per-run seconds of each graph."""

    flops_full: int
    flops_split: int
    full: list[float] = field(default_factory=list)
    split: list[float] = field(default_factory=list)

    @property
    def flops_ratio(self) -> float:
        return self.flops_split / self.flops_full

    @property
    def time_ratio(self) -> float:
        """split / full, medians."""
        return statistics.median(self.split) / statistics.median(self.full)


@dataclass
class ShapeResult:
    name: str
    parity: float  # max |split ONNX - unsplit torch| / (1 + |torch|) on 1,000 holdout rows
    cells: dict[int, Cell]


def matmul_flops(model_path: Path, shapes: dict[str, tuple[int, ...]]) -> int:
    """2·M·K·N summed over the graph's MatMul and Gemm nodes, for inputs of the given shapes."""
    model = onnx.load(str(model_path))
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        for d, size in zip(dims, shapes[inp.name], strict=True):
            d.ClearField("dim_param")
            d.dim_value = size
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    known = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
             for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    known.update({t.name: list(t.dims) for t in inferred.graph.initializer})
    total = 0
    for node in inferred.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        a, b = known[node.input[0]], known[node.input[1]]
        trans_b = any(att.name == "transB" and att.i for att in node.attribute)
        k, n = (b[-1], b[-2]) if trans_b else (b[-2], b[-1])
        if not all(a) or not k or not n:
            raise ValueError(f"{node.name}: shapes not inferred ({a}, {b})")
        total += 2 * int(np.prod(a[:-1])) * k * n
    return total


def add_user_history(data_dir: Path, dim: int) -> list[str]:
    """Give every demo row its user's `dim` history values (a fixed random vector per user)."""
    names = [f"user_hist_{k}" for k in range(dim)]
    for path in sorted(data_dir.rglob("*.parquet")):
        table = pq.read_table(path, partitioning=None)
        ids = np.asarray(table.column("user_id").to_pylist(), dtype=str)
        seeds = np.array([zlib.crc32(s.encode()) for s in ids])
        vectors = np.random.default_rng(0).standard_normal((4096, dim)).astype(np.float32)[seeds % 4096]
        for k, name in enumerate(names):
            table = table.append_column(name, pa.array(vectors[:, k]))
        pq.write_table(table, path)
    return names


def build_shape(name: str, data_dir: Path):
    """(spec, prepared, heads) of one shape, weights as initialized."""
    import torch

    from training.evaluation.inference import export_heads
    from training.fit.train import build_model, model_args, prepare, set_seed
    from training.spec import load_spec
    from training.spec.schema import NumericFeature

    spec = load_spec(REPO / "configs" / "demo.yaml", data_path=str(data_dir))
    if name in HISTORY_DIMS:
        spec.features.numeric += [NumericFeature(name=f"user_hist_{k}", source="user")
                                  for k in range(HISTORY_DIMS[name])]
    if name == "large":
        spec.model.num_experts, spec.model.expert_hidden = 8, [256, 128]
    set_seed(0)
    torch.set_num_threads(1)
    prep = prepare(spec)
    model = build_model(model_args(spec, prep.encoders, prep.train.numeric)).eval()
    return spec, prep, export_heads(model, spec, prep.scalers)


def export_both(name: str, data_dir: Path, out: Path) -> tuple[Path, Path, float, object, np.ndarray, np.ndarray]:
    from training.bundle.export import check_parity, export_onnx, onnx_outputs
    from training.evaluation.inference import predict

    spec, prep, heads = build_shape(name, data_dir)
    full, split = out / f"{name}-full.onnx", out / f"{name}-split.onnx"
    export_onnx(heads, full, spec.task_names(), prep.train)
    if export_onnx(heads, split, spec.task_names(), prep.train, prep.encoders) != "split":
        raise RuntimeError(f"{name}: the model could not be split")
    check_parity(heads, split, prep.holdout(), 1000, prep.encoders, "split")  # raises beyond 1e-5 + 1e-5·|value|
    rows = prep.holdout().head(1000)
    want = predict(heads, rows)
    got = onnx_outputs(split, rows.categorical, rows.numeric, prep.encoders, "split")
    parity = float((np.abs(got - want) / (1 + np.abs(want))).max())
    return full, split, parity, prep.encoders, prep.train.categorical, prep.train.numeric


def request_inputs(features, cat: np.ndarray, num: np.ndarray, size: int) -> tuple[dict, dict]:
    """One request of `size` candidates: full-layout rows (user/context of row 0 on every row) and the split inputs."""
    rows = np.arange(size) % len(cat)
    full = {CATEGORICAL_INPUT: cat[rows].copy(), NUMERIC_INPUT: num[rows].copy()}
    split = one_request(features, full)
    c = split_columns(features)
    full[CATEGORICAL_INPUT][:, c.request_cat] = cat[:1, c.request_cat]
    full[NUMERIC_INPUT][:, c.request_num] = num[:1, c.request_num]
    return full, split


def time_interleaved(sessions: tuple[ort.InferenceSession, ort.InferenceSession], inputs: tuple[dict, dict],
                     cell: Cell, runs: int, max_seconds: float) -> None:
    """Alternate full and split session.run calls; per-run seconds into cell.full / cell.split."""
    for s, x in zip(sessions, inputs, strict=True):
        for _ in range(3):
            s.run(None, x)
    start = time.perf_counter()
    for _ in range(runs):
        for s, x, out in zip(sessions, inputs, (cell.full, cell.split), strict=True):
            t0 = time.perf_counter()
            s.run(None, x)
            out.append(time.perf_counter() - t0)
        if time.perf_counter() - start > max_seconds:
            break


def measure(sizes: list[int], runs: int = 200, max_seconds: float = 4.0,
            shapes: tuple[str, ...] = SHAPES) -> list[ShapeResult]:
    from training.data.demo import DemoConfig, write_demo

    results = []
    with tempfile.TemporaryDirectory(prefix="split-cost-") as tmp:
        base = Path(tmp)
        for name in shapes:
            data = base / f"data-{name}"
            write_demo(data, DemoConfig(rows=ROWS, seed=0))
            if name in HISTORY_DIMS:
                add_user_history(data, HISTORY_DIMS[name])
            full, split, parity, features, cat, num = export_both(name, data, base)
            sessions = tuple(ort.InferenceSession(str(p), SessionConfig().options(),
                                                  providers=["CPUExecutionProvider"]) for p in (full, split))
            cells = {}
            for size in sizes:
                x_full, x_split = request_inputs(features, cat, num, size)
                got = [np.concatenate([np.ravel(o) for o in s.run(None, x)]) for s, x in
                       zip(sessions, (x_full, x_split), strict=True)]
                assert np.allclose(got[0], got[1], atol=1e-4, rtol=1e-4), f"{name}: graphs differ at {size}"
                cell = Cell(matmul_flops(full, {k: v.shape for k, v in x_full.items()}),
                            matmul_flops(split, {k: v.shape for k, v in x_split.items()}))
                time_interleaved(sessions, (x_full, x_split), cell, runs, max_seconds)
                cells[size] = cell
            results.append(ShapeResult(name, parity, cells))
            print(f"measured the split of the {name} model", file=sys.stderr)
    return results


def render(results: list[ShapeResult]) -> list[str]:
    lines = ["| model | candidates | MFLOPs unsplit | MFLOPs split | FLOPs split/unsplit | unsplit ms (median, min) "
             "| split ms (median, min) | time split/unsplit (medians) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for size, c in r.cells.items():
            lines.append(f"| {r.name} | {size:,} | {c.flops_full / 1e6:.1f} | {c.flops_split / 1e6:.1f} "
                         f"| {c.flops_ratio:.2f} | {statistics.median(c.full) * 1e3:.3f}, {min(c.full) * 1e3:.3f} "
                         f"| {statistics.median(c.split) * 1e3:.3f}, {min(c.split) * 1e3:.3f} | {c.time_ratio:.2f} |")
    parity = ", ".join(f"{r.name} {r.parity:.1e}" for r in results)
    lines += ["", "Split graph (onnxruntime) vs the unsplit PyTorch model on 1,000 holdout rows, max |difference| / "
              f"(1 + |value|) over every head (probabilities, seconds, stars): {parity}. The export refuses a split "
              "graph beyond 1e-5 + 1e-5·|value|."]
    return lines


def floors(results: list[ShapeResult], size: int = 500) -> list[tuple[str, bool, str]]:
    """(floor, passed, evidence) for the split's two floors at `size` candidates."""
    by_name = {r.name: r for r in results}
    out = []
    if "demo" in by_name and size in by_name["demo"].cells:
        c = by_name["demo"].cells[size]
        ok = c.time_ratio <= c.flops_ratio * 1.2
        out.append((f"demo model: model time split/unsplit <= FLOPs ratio x 1.2 at {size}", ok,
                    f"time {c.time_ratio:.2f} vs FLOPs {c.flops_ratio:.2f} (bound {c.flops_ratio * 1.2:.2f})"))
    for name in HISTORY_DIMS:
        if name in by_name and size in by_name[name].cells:
            c = by_name[name].cells[size]
            out.append((f"{name} model ({HISTORY_DIMS[name]}-dim user history): model time drops >= 2x at {size}",
                        1 / c.time_ratio >= 2, f"{1 / c.time_ratio:.2f}x (FLOPs {1 / c.flops_ratio:.2f}x)"))
    return out


if __name__ == "__main__":
    res = measure([50, 500, 1000, 5000])
    print("\n".join(render(res)))
    for name, ok, evidence in floors(res):
        print(f"- {name}: {evidence} -> {'PASS' if ok else 'FAIL'}")
