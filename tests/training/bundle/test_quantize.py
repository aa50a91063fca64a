"""int8 (training/bundle/quantize.py, requantize.py): the quantized graph is served only past its holdout gate,
whether chosen in the spec (at export) or at publish."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from typer.testing import CliRunner

from service.contract.bundle import MODEL_FILE, load_bundle, read_manifest
from service.contract.features import CATEGORICAL_INPUT, NUMERIC_INPUT
from service.registry import Registry
from tests.conftest import DEMO_SPEC
from training.bundle.export import export_bundle
from training.bundle.quantize import Holdout, Int8Bounds, calibration_feeds, int8_gate, quantize_graph
from training.bundle.requantize import QuantizeRefused, quantize_bundle
from training.cli import app

PASS_ALL = Int8Bounds(auc_drop=1.0, rmse_rise=1e9, overlap=0.0)
FAIL_ALL = Int8Bounds(auc_drop=-1.0, rmse_rise=-1.0, overlap=1.01)


def quantized(path: Path) -> bool:
    return any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul", "QGemm")
               for n in onnx.load(str(path)).graph.node)


def op_types(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


@pytest.fixture(scope="module", params=["dynamic", "static"])
def int8_bundle(request: pytest.FixtureRequest, trained, tmp_path_factory) -> Path:
    spec = trained.spec.model_copy(deep=True)
    spec.train.quantize = request.param
    return export_bundle(dataclasses.replace(trained, spec=spec), tmp_path_factory.mktemp("int8") / "b")


@pytest.mark.slow
def test_the_served_graph_is_int8_exactly_when_the_gate_passed(int8_bundle: Path, trained) -> None:
    gate = read_manifest(int8_bundle).metrics["int8"]
    assert gate["method"] in ("dynamic", "static") and gate["rows"] == len(trained.prepared.holdout())
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
    holdout = Holdout(holdout.raw_labels, holdout.request)
    same = int8_gate(raw, raw.copy(), holdout, tasks, trained.spec)
    assert same["passed"] and all(c["ok"] for c in same["checks"].values())
    noisy = raw + np.random.default_rng(0).normal(0, 0.2, raw.shape).astype(np.float32)
    worse = int8_gate(raw, noisy, holdout, tasks, trained.spec)
    assert not worse["passed"]
    strict = int8_gate(raw, raw.copy(), holdout, tasks, trained.spec, bounds=Int8Bounds(overlap=1.01))
    assert not strict["passed"] and all(c["ok"] for k, c in strict["checks"].items() if "overlap" not in k)


def test_static_quantization_fixes_activation_ranges_from_the_calibration_feeds(bundle_dir: Path, trained,
                                                                                 tmp_path: Path) -> None:
    manifest = read_manifest(bundle_dir)
    rows = trained.prepared.train.head(500)
    feeds = calibration_feeds({CATEGORICAL_INPUT: rows.categorical, NUMERIC_INPUT: rows.numeric},
                              manifest.features, manifest.input_layout, limit=20)
    assert 0 < len(feeds) <= 20 and all(set(f) == set(manifest.input_names) for f in feeds)
    out = tmp_path / "static.onnx"
    quantize_graph(bundle_dir / MODEL_FILE, out, "static", feeds)
    assert {"QGemm", "QuantizeLinear"} <= op_types(out) and "DynamicQuantizeLinear" not in op_types(out)
    assert out.stat().st_size < (bundle_dir / MODEL_FILE).stat().st_size / 2


def test_a_bundle_quantized_at_publish_serves_int8_only_past_its_gate(bundle_dir: Path, tiny_spec,
                                                                      tmp_path: Path) -> None:
    with pytest.raises(QuantizeRefused, match="failed its gate on .* test rows: click AUC"):
        quantize_bundle(bundle_dir, tiny_spec, "dynamic", tmp_path / "refused", FAIL_ALL)
    assert not (tmp_path / "refused" / "bundle").exists()
    int8 = quantize_bundle(bundle_dir, tiny_spec, "static", tmp_path / "passed", PASS_ALL)
    manifest = load_bundle(int8).manifest  # sha256 and parity outputs are the int8 graph's
    assert manifest.metrics["int8"]["method"] == "static" and manifest.metrics["int8"]["passed"]
    assert "QGemm" in op_types(int8 / MODEL_FILE) and not quantized(bundle_dir / MODEL_FILE)
    assert manifest.parity_sample.outputs != read_manifest(bundle_dir).parity_sample.outputs
    with pytest.raises(QuantizeRefused, match="int8 graph already"):
        quantize_bundle(int8, tiny_spec, "dynamic", tmp_path / "twice", PASS_ALL)


def test_ranker_publish_quantize_publishes_the_int8_graph_or_nothing(bundle_dir: Path, tiny_dir: Path,
                                                                     tmp_path: Path) -> None:
    runner, registry = CliRunner(), tmp_path / "reg"
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["data"]["path"], raw["eval"]["weights"] = str(tiny_dir), str(DEMO_SPEC.parent / raw["eval"]["weights"])
    # Two of the bundle's features named by a pattern, which must be expanded as in training.
    raw["features"]["numeric"] = [f for f in raw["features"]["numeric"] if f["name"] not in
                                  ("item_popularity", "item_age_days")] + [
        {"name": "item_*", "source": "item", "transform": "log1p", "exclude": ["item_id"]}]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    for args, message in ((["--quantize", "dynamic"], "--quantize needs --spec"),
                          (["--quantize", "int4", "--spec", str(spec)], "'int4' is not one of")):
        bad = runner.invoke(app, ["publish", str(bundle_dir), "--registry", str(registry), *args])
        assert bad.exit_code == 2 and message in bad.stderr, bad.output
    result = runner.invoke(app, ["publish", str(bundle_dir), "--registry", str(registry), "--quantize", "dynamic",
                                 "--spec", str(spec)])
    if result.exit_code == 0:  # the tiny model's own gate decides; either way the outcome must be consistent
        assert "serving its dynamic int8 graph (CURRENT)" in result.output
        reg = Registry(registry, "demo")
        served = load_bundle(reg.bundle_dir(reg.current()))
        assert served.manifest.metrics["int8"]["passed"] and quantized(served.path / MODEL_FILE)
    else:
        assert result.exit_code == 2 and "failed its gate" in result.stderr and "nothing was published" in result.stderr
        assert Registry(registry, "demo").current() is None
