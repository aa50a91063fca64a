"""An existing bundle quantized to int8 at publish time (`ranker publish --quantize`), past the same gate.

The spec names the bundle's data: its holdout split (test, else valid) is what the gate judges, as at
export, and the first rows of its train split calibrate `static`. A passed gate gives a new complete
bundle: model.onnx replaced, the manifest's sha256, parity outputs (re-scored by the int8 graph) and
metrics["int8"] updated, then verified by `load_bundle` as the server will. A failed gate writes nothing.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa

from service.contract.bundle import Manifest, SessionConfig, load_bundle, parity_outputs, write_manifest
from service.contract.files import sha256_file
from training import data as D
from training.bundle.quantize import (
    CALIBRATION_ROWS,
    Holdout,
    Int8Bounds,
    Method,
    calibration_feeds,
    int8_gate,
    quantize_graph,
)
from training.data import splits as S
from training.data.columns import expand_numeric_patterns
from training.evaluation.evaluate import bundle_predictions, check_compatible
from training.spec import RankerSpec


class QuantizeRefused(Exception):
    """The int8 graph failed its gate (`gate`: its record) or the bundle is int8 already: nothing was written."""

    def __init__(self, message: str, gate: dict | None = None) -> None:
        super().__init__(message)
        self.gate = gate


def quantize_bundle(src: Path, spec: RankerSpec, method: Method, work_dir: Path,
                    bounds: Int8Bounds | None = None) -> Path:
    """work_dir/bundle: the bundle at src serving its `method` int8 graph. Raises QuantizeRefused."""
    spec, _ = expand_numeric_patterns(spec)  # `genre_*` names the columns the bundle was trained on
    bundle = load_bundle(src)
    if bundle.manifest.metrics.get("int8", {}).get("passed"):
        raise QuantizeRefused(f"bundle {src} serves an int8 graph already")
    check_compatible(bundle, spec)
    splits = S.load_splits(spec)
    holdout, names = splits.holdout(), spec.task_names()
    work = Path(work_dir) / "bundle"
    shutil.copytree(src, work)
    model = work / bundle.manifest.model_file
    calibration = training_calibration(splits.train, bundle.manifest) if method == "static" else ()
    quantize_graph(src / bundle.manifest.model_file, model, method, calibration)
    int8 = dataclasses.replace(bundle, path=work, session=ort.InferenceSession(
        str(model), SessionConfig().options(), providers=["CPUExecutionProvider"]))
    gate = int8_gate(bundle_predictions(bundle, holdout, names), bundle_predictions(int8, holdout, names),
                     Holdout(D.raw_labels(holdout, spec), D.request_index(holdout, spec)),
                     [bundle.manifest.task(n) for n in names], spec, method, bounds or Int8Bounds())
    if not gate["passed"]:
        shutil.rmtree(work)
        failed = ", ".join(f"{k} ({_describe(c)})" for k, c in gate["checks"].items() if not c["ok"])
        raise QuantizeRefused(f"the {method} int8 graph failed its gate on {gate['rows']:,} {splits.holdout_name()} "
                              f"rows: {failed}; nothing was published", gate)
    served = parity_outputs(int8)
    m = bundle.manifest
    parity = m.parity_sample.model_copy(update={"outputs": {t.output: served[t.name].tolist() for t in m.tasks}})
    write_manifest(work, m.model_copy(update={"model_sha256": sha256_file(model), "parity_sample": parity,
                                              "metrics": {**m.metrics, "int8": gate}}))
    load_bundle(work)  # the server's own verification
    return work


def training_calibration(train: pa.Table, manifest: Manifest) -> list[dict[str, np.ndarray]]:
    """The static method's calibration feeds: the first CALIBRATION_ROWS training rows, as the graph takes them."""
    inputs = D.feature_inputs(train.slice(0, CALIBRATION_ROWS), manifest.features)
    return calibration_feeds(inputs, manifest.features, manifest.input_layout)


def _describe(check: dict) -> str:
    if "error" in check:
        return check["error"]
    return f"fp32 {check['fp32']:.4f}, int8 {check['int8']:.4f}" if "fp32" in check else f"int8 {check['int8']:.4f}"
