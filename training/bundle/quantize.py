"""int8: the exported graph quantized by onnxruntime's tools, served only if a holdout gate passes.

Two methods; both store each MatMul/Gemm weight as int8 and leave the graph's inputs and outputs
unchanged (they drop into any layout):

    dynamic   activations quantized per call from their observed range (no calibration data)
    static    activation ranges fixed ahead of time (MinMax) from calibration feeds: training rows,
              never the holdout the gate judges on; QOperator format (QGemm, QLinearMatMul), unsigned
              activations and signed weights (preferred to QDQ in a one-off comparison on the demo
              model; the gate decides whether it serves)

The gate compares the fp32 and the int8 graph on the holdout rows, heads served as the server serves
them (calibrated):

    binary head       AUC drop        <= 0.002 (absolute)
    ranking head      NDCG@k drop     <= 0.002 (absolute)
    regression head   RMSE rise       <= 1 %   (relative, natural units)
    served profile    top-10 overlap  >= 0.95  (mean over requests of |top10(fp32) ∩ top10(int8)| / min(10, n))

A failed gate keeps the fp32 graph; either way the verdict and every number go to the manifest's
metrics["int8"].
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from sklearn.metrics import roc_auc_score

from service.contract.bundle import TaskInfo
from service.contract.features import CATEGORICAL_INPUT, NUMERIC_INPUT, FeatureEncoders
from service.contract.layout import Layout, split_rows
from service.profiles import WeightsError, compile_weights
from training.evaluation.metrics import ndcg_at_k
from training.evaluation.served import eval_weights, heads_of
from training.spec import RankerSpec

Method = Literal["dynamic", "static"]
AUC_DROP = 0.002
RMSE_RISE = 0.01
TOP_K = 10
TOP_K_OVERLAP = 0.95
CALIBRATION_ROWS = 4096  # training rows whose activations fix the static ranges
CALIBRATION_FEEDS = 256  # session.run calls they make at most (a split graph runs once per user/context row)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Int8Bounds:
    auc_drop: float = AUC_DROP
    rmse_rise: float = RMSE_RISE
    overlap: float = TOP_K_OVERLAP


@dataclass(frozen=True)
class Holdout:
    """What the gate judges on: raw labels (N, T) in label units, NaN where missing, and each row's
    request index (N,) or None when the data has no requests."""

    raw_labels: np.ndarray
    request: np.ndarray | None


class _Feeds(CalibrationDataReader):
    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def calibration_feeds(inputs: Mapping[str, np.ndarray], features: FeatureEncoders, layout: Layout,
                      limit: int = CALIBRATION_FEEDS) -> list[dict[str, np.ndarray]]:
    """Full-layout rows (categorical (N, C), numeric (N, F)) -> the graph's feeds: one for a full
    graph, one per distinct user/context row (at most `limit`) for a split graph."""
    if layout == "full":
        return [{CATEGORICAL_INPUT: inputs[CATEGORICAL_INPUT], NUMERIC_INPUT: inputs[NUMERIC_INPUT]}]
    feeds = []
    for _, feed in split_rows(features, inputs):
        feeds.append(feed)
        if len(feeds) == limit:
            break
    return feeds


def quantize_graph(src: Path, dst: Path, method: Method = "dynamic",
                   calibration: Iterable[dict[str, np.ndarray]] = ()) -> None:
    """dst: src with int8 MatMul/Gemm weights (per-tensor, signed); activations quantized per call
    (dynamic) or over the ranges `calibration` (the graph's feeds) showed (static)."""
    # onnxruntime's quantizer logs advice on the root logger (pre-processing; every Gemm whose bias is
    # computed, as the split graph's broadcast user/context part is): the gate, not the advice, decides.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        if method == "dynamic":
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        else:
            quantize_static(str(src), str(dst), _Feeds(calibration), quant_format=QuantFormat.QOperator,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["MatMul", "Gemm"])
    finally:
        root.setLevel(level)


def int8_gate(fp32: np.ndarray, int8: np.ndarray, holdout: Holdout, tasks: list[TaskInfo], spec: RankerSpec,
              method: Method = "dynamic", bounds: Int8Bounds = Int8Bounds()) -> dict:
    """The gate's checks and verdict. fp32, int8: (N, T) served (calibrated) heads on the holdout rows."""
    checks: dict[str, dict] = {}
    for j, t in enumerate(tasks):
        seen = ~np.isnan(holdout.raw_labels[:, j])
        y = holdout.raw_labels[seen, j]
        if t.type == "binary":
            if len(np.unique(y)) < 2:
                continue
            a, b = roc_auc_score(y, fp32[seen, j]), roc_auc_score(y, int8[seen, j])
            checks[f"{t.name} AUC"] = {"fp32": a, "int8": b, "ok": bool(a - b <= bounds.auc_drop)}
        elif t.type == "ranking" and seen.any():
            a, b = (ndcg_at_k(holdout.request[seen], x[seen, j], y, spec.eval.ndcg_k) for x in (fp32, int8))
            checks[f"{t.name} NDCG"] = {"fp32": a, "int8": b, "ok": bool(a is None or a - b <= bounds.auc_drop)}
        elif seen.any():
            a = float(np.sqrt(np.mean((fp32[seen, j] - y) ** 2)))
            b = float(np.sqrt(np.mean((int8[seen, j] - y) ** 2)))
            checks[f"{t.name} RMSE"] = {"fp32": a, "int8": b, "ok": bool(b <= a * (1 + bounds.rmse_rise))}
    checks.update(_overlaps(fp32, int8, holdout, tasks, spec, bounds))
    return {"method": method, "passed": all(c["ok"] for c in checks.values()), "rows": int(len(fp32)),
            "checks": checks}


def _overlaps(fp32: np.ndarray, int8: np.ndarray, holdout: Holdout, tasks: list[TaskInfo], spec: RankerSpec,
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


def serve_int8_if_gated(model_path: Path, method: Method, served: Callable[[Path], np.ndarray], holdout: Holdout,
                        tasks: list[TaskInfo], spec: RankerSpec, calibration: Iterable[dict[str, np.ndarray]] = (),
                        bounds: Int8Bounds = Int8Bounds()) -> dict:
    """Quantize model_path; replace it by the int8 graph only if the gate passes. Returns the gate's record.

    served(graph path) -> (N, T) the graph's calibrated heads on the holdout rows; calibration: the
    graph's feeds for `static` (see calibration_feeds).
    """
    int8_path = model_path.with_suffix(".int8.onnx")
    quantize_graph(model_path, int8_path, method, calibration)
    gate = int8_gate(served(model_path), served(int8_path), holdout, tasks, spec, method, bounds)
    if gate["passed"]:
        shutil.move(str(int8_path), model_path)
    else:
        int8_path.unlink()
        failed = [k for k, c in gate["checks"].items() if not c["ok"]]
        log.warning("int8 gate failed (%s): serving the fp32 graph", ", ".join(failed))
    return gate
