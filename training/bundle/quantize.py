"""int8: the exported graph with onnxruntime's dynamic quantization, served only if a holdout gate passes.

Dynamic quantization stores each MatMul's weights as int8 and quantizes activations per call, so the
graph's inputs and outputs are unchanged (it drops into any layout). The gate compares the fp32 and
the int8 graph on the holdout rows, heads served as the server serves them (calibrated):

    binary head       AUC drop        <= 0.002 (absolute)
    regression head   RMSE rise       <= 1 %   (relative, natural units)
    served profile    top-10 overlap  >= 0.95  (mean over requests of |top10(fp32) ∩ top10(int8)| / min(10, n))

A failed gate keeps the fp32 graph; either way the verdict and every number go to the manifest's
metrics["int8"].
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnxruntime.quantization import QuantType, quantize_dynamic
from sklearn.metrics import roc_auc_score

from service.contract.bundle import TaskInfo
from service.profiles import WeightsError, compile_weights
from training.data import Encoded
from training.spec import RankerSpec
from training.weights.served import eval_weights, heads_of

AUC_DROP = 0.002
RMSE_RISE = 0.01
TOP_K = 10
TOP_K_OVERLAP = 0.95
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Int8Bounds:
    auc_drop: float = AUC_DROP
    rmse_rise: float = RMSE_RISE
    overlap: float = TOP_K_OVERLAP


def quantize_graph(src: Path, dst: Path) -> None:
    """dst: src with int8 weights (per-tensor, signed) and dynamically quantized activations."""
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)


def int8_gate(fp32: np.ndarray, int8: np.ndarray, holdout: Encoded, tasks: list[TaskInfo], spec: RankerSpec,
              bounds: Int8Bounds = Int8Bounds()) -> dict:
    """The gate's checks and verdict. fp32, int8: (N, T) served (calibrated) heads on the holdout rows."""
    checks: dict[str, dict] = {}
    for j, t in enumerate(tasks):
        seen = holdout.mask[:, j]
        y = holdout.raw_labels[seen, j]
        if t.type == "binary":
            if len(np.unique(y)) < 2:
                continue
            a, b = roc_auc_score(y, fp32[seen, j]), roc_auc_score(y, int8[seen, j])
            checks[f"{t.name} AUC"] = {"fp32": a, "int8": b, "ok": bool(a - b <= bounds.auc_drop)}
        elif seen.any():
            a = float(np.sqrt(np.mean((fp32[seen, j] - y) ** 2)))
            b = float(np.sqrt(np.mean((int8[seen, j] - y) ** 2)))
            checks[f"{t.name} RMSE"] = {"fp32": a, "int8": b, "ok": bool(b <= a * (1 + bounds.rmse_rise))}
    checks.update(_overlaps(fp32, int8, holdout, tasks, spec, bounds))
    return {"method": "dynamic", "passed": all(c["ok"] for c in checks.values()), "rows": int(len(fp32)),
            "checks": checks}


def _overlaps(fp32: np.ndarray, int8: np.ndarray, holdout: Encoded, tasks: list[TaskInfo], spec: RankerSpec,
              bounds: Int8Bounds) -> dict[str, dict]:
    """Mean top-k overlap per served profile, over the holdout's requests."""
    if holdout.request is None:
        return {"top-10 overlap": {"error": "no data.request_id: no requests to rank", "ok": False}}
    try:
        compiled = compile_weights(eval_weights(spec)[0], tasks)
    except WeightsError as e:
        return {"top-10 overlap": {"error": str(e), "ok": False}}
    names = [t.name for t in tasks]
    order = np.argsort(holdout.request, kind="stable")
    starts = np.flatnonzero(np.diff(holdout.request[order], prepend=-1))
    groups = np.split(order, starts[1:])
    out = {}
    for name, profile in sorted(compiled.profiles.items()):
        a, b = profile.combine(heads_of(fp32, names)), profile.combine(heads_of(int8, names))
        per = [len(set(g[np.argsort(-a[g], kind="stable")[:TOP_K]]) & set(g[np.argsort(-b[g], kind="stable")[:TOP_K]]))
               / min(TOP_K, len(g)) for g in groups]
        value = float(np.mean(per))
        out[f"{name} top-{TOP_K} overlap"] = {"int8": value, "ok": bool(value >= bounds.overlap)}
    return out


def serve_int8_if_gated(model_path: Path, served: Callable[[Path], np.ndarray], holdout: Encoded,
                        tasks: list[TaskInfo], spec: RankerSpec, bounds: Int8Bounds = Int8Bounds()) -> dict:
    """Quantize model_path; replace it by the int8 graph only if the gate passes. Returns the gate's record.

    served(graph path) -> (N, T) the graph's calibrated heads on the holdout rows.
    """
    int8_path = model_path.with_suffix(".int8.onnx")
    quantize_graph(model_path, int8_path)
    gate = int8_gate(served(model_path), served(int8_path), holdout, tasks, spec, bounds)
    if gate["passed"]:
        shutil.move(str(int8_path), model_path)
    else:
        int8_path.unlink()
        failed = [k for k, c in gate["checks"].items() if not c["ok"]]
        log.warning("int8 gate failed (%s): serving the fp32 graph", ", ".join(failed))
    return gate
