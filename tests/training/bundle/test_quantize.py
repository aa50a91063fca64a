"""int8 (training/bundle/quantize.py): the quantized graph is served only past its holdout gate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from service.contract.bundle import MODEL_FILE, load_bundle, read_manifest
from training.bundle.export import export_bundle
from training.bundle.quantize import Int8Bounds, int8_gate, quantize_graph


def quantized(path: Path) -> bool:
    return any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for n in onnx.load(str(path)).graph.node)


@pytest.fixture(scope="module")
def int8_bundle(trained, tmp_path_factory) -> Path:
    spec = trained.spec.model_copy(deep=True)
    spec.train.quantize = "dynamic"
    return export_bundle(dataclasses.replace(trained, spec=spec), tmp_path_factory.mktemp("int8") / "b")


@pytest.mark.slow
def test_the_served_graph_is_int8_exactly_when_the_gate_passed(int8_bundle: Path, trained) -> None:
    gate = read_manifest(int8_bundle).metrics["int8"]
    assert gate["method"] == "dynamic" and gate["rows"] == len(trained.prepared.holdout())
    names = set(gate["checks"])
    assert {"click AUC", "like AUC", "watch_time RMSE", "rating RMSE"} <= names
    assert any(n.endswith("top-10 overlap") for n in names)
    assert gate["passed"] == all(c["ok"] for c in gate["checks"].values())
    assert quantized(int8_bundle / MODEL_FILE) == gate["passed"]
    load_bundle(int8_bundle)  # its parity sample was scored by the graph it serves


def test_quantize_graph_writes_integer_matmuls_in_under_half_the_bytes(bundle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    quantize_graph(bundle_dir / MODEL_FILE, out)
    assert quantized(out) and not quantized(bundle_dir / MODEL_FILE)
    assert out.stat().st_size < (bundle_dir / MODEL_FILE).stat().st_size / 2


def test_the_gate_fails_on_any_check_beyond_its_bound(trained) -> None:
    from training.bundle.calibration import fit_calibrations
    from training.bundle.export import task_infos
    from training.evaluation.inference import export_heads, predict

    heads = export_heads(trained.model, trained.spec, trained.prepared.scalers)
    holdout = trained.prepared.holdout()
    raw = predict(heads, holdout)
    valid = trained.prepared.valid
    tasks = task_infos(trained, fit_calibrations(trained.spec, predict(heads, valid), valid.raw_labels), raw)
    same = int8_gate(raw, raw.copy(), holdout, tasks, trained.spec)
    assert same["passed"] and all(c["ok"] for c in same["checks"].values())
    noisy = raw + np.random.default_rng(0).normal(0, 0.2, raw.shape).astype(np.float32)
    worse = int8_gate(raw, noisy, holdout, tasks, trained.spec)
    assert not worse["passed"]
    strict = int8_gate(raw, raw.copy(), holdout, tasks, trained.spec, Int8Bounds(overlap=1.01))
    assert not strict["passed"] and all(c["ok"] for k, c in strict["checks"].items() if "overlap" not in k)
