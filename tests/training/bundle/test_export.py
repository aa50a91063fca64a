"""The exported ONNX graph reproduces PyTorch, on real rows and on rows with unknown or missing values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from service.contract.bundle import (
    MODEL_FILE,
    PARITY_ATOL,
    PARITY_RTOL,
    BundleError,
    load_bundle,
    read_manifest,
)
from service.contract.features import OOV_INDEX
from tests.training.conftest import as_arch, as_ple_auto
from training import data as D
from training.bundle.calibration import calibrate_columns
from training.bundle.export import ExportError, check_parity, export_bundle, onnx_outputs
from training.evaluation.inference import export_heads


@pytest.fixture(scope="module")
def heads(trained):
    return export_heads(trained.model, trained.spec, trained.prepared.scalers)


def torch_outputs(heads, inputs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        outs = heads(torch.from_numpy(inputs["categorical"]), torch.from_numpy(inputs["numeric"]))
    return torch.stack(outs, dim=1).numpy()


def assert_parity(bundle, heads, inputs: dict[str, np.ndarray]) -> None:
    """The graph reproduces torch, and the served heads are torch's calibrated as the manifest says."""
    names, m = bundle.manifest.task_names, bundle.manifest
    graph = onnx_outputs(bundle.path / MODEL_FILE, inputs["categorical"], inputs["numeric"], m.features, m.input_layout)
    got = bundle.predict_rows(inputs)
    served = np.stack([got[t] for t in names], axis=1)
    expected = torch_outputs(heads, inputs)
    assert np.isfinite(served).all()
    np.testing.assert_allclose(graph, expected, atol=PARITY_ATOL, rtol=PARITY_RTOL)
    np.testing.assert_allclose(served, calibrate_columns(bundle.manifest.tasks, expected), atol=PARITY_ATOL,
                               rtol=PARITY_RTOL)


def test_bundle_matches_torch_on_real_test_rows(bundle_dir: Path, trained, heads) -> None:
    bundle = load_bundle(bundle_dir)  # also re-checks sha256 and the parity sample
    inputs = D.feature_inputs(trained.prepared.splits.test, bundle.manifest.features)
    assert len(inputs["categorical"]) >= 1000
    assert_parity(bundle, heads, inputs)


def test_bundle_matches_torch_on_unknown_categories_and_missing_numerics(bundle_dir: Path, heads) -> None:
    bundle = load_bundle(bundle_dir)
    enc = bundle.manifest.features
    n = 64
    rng = np.random.default_rng(0)
    columns = {
        "user_id": ["never-seen-user"] * n,  # OOV
        "user_segment": [None] * n,  # missing -> OOV
        "device": rng.choice(["tv", "fridge", None], n).tolist(),
        "item_id": [f"i{k}" if k % 2 else f"new-item-{k}" for k in range(n)],
        "item_category": ["c1"] * n,
        "user_activity": [None] * n,  # missing numeric -> fill value
        "hour": rng.integers(0, 24, n).astype(float).tolist(),
        "item_popularity": np.where(np.arange(n) % 3 == 0, np.nan, 5.0).tolist(),
    }  # item_age_days and title_caps_ratio absent: defaults
    inputs = enc.encode_columns(columns, n)
    assert (inputs["categorical"][:, 0] == OOV_INDEX).all()
    assert (inputs["categorical"][:, 1] == OOV_INDEX).all()
    assert np.isfinite(inputs["numeric"]).all()
    assert_parity(bundle, heads, inputs)
    outs = bundle.predict_rows(inputs)
    assert ((outs["click"] > 0) & (outs["click"] < 1)).all()
    assert (outs["watch_time"] >= 0).all()


def test_onnx_has_a_dynamic_batch_and_one_named_output_per_task(bundle_dir: Path, trained) -> None:
    model = onnx.load(str(bundle_dir / MODEL_FILE))
    assert [o.name for o in model.graph.output] == trained.spec.task_names()
    dims = {i.name: i.type.tensor_type.shape.dim[0] for i in model.graph.input}
    assert sorted(dims) == ["item_categorical", "item_numeric", "request_categorical", "request_numeric"]
    for name in ("item_categorical", "item_numeric"):  # one row per candidate
        assert dims[name].dim_param and not dims[name].dim_value
    for name in ("request_categorical", "request_numeric"):  # one row per request
        assert dims[name].dim_value == 1
    assert sorted(p.name for p in bundle_dir.iterdir()) == sorted(
        ["checkpoint.pt", "gate_heatmap.png", "manifest.json", MODEL_FILE, "reliability.png", "report.md",
         "training_curves.png"])


def test_manifest_describes_the_model(bundle_dir: Path, trained) -> None:
    m = read_manifest(bundle_dir)
    assert m.model_args["arch"] == "mmoe" and m.model_args["tasks"] == trained.spec.task_names()
    assert m.data_window["rows"]["test"] == trained.prepared.splits.test.num_rows
    assert len(m.parity_sample.rows) == 32
    assert m.feedback == trained.spec.feedback and m.feedback.events["click"] == "flag"  # what the server accepts
    # measured on the bundle (onnxruntime), as `ranker evaluate` measures it; torch agrees to float rounding
    assert m.metrics["test"]["tasks"]["click"]["auc"] == pytest.approx(trained.metrics["test"]["tasks"]["click"]["auc"],
                                                                      abs=1e-4)
    assert set(m.metrics["test"]["gates"]) == set(trained.spec.task_names())
    assert m.metrics["epochs"] == len(trained.history)
    json.dumps(m.metrics)  # plain JSON values only


def test_export_check_catches_a_graph_that_differs(trained, heads, full_bundle_dir: Path) -> None:
    path = full_bundle_dir / MODEL_FILE  # export_onnx's unsplit graph of these heads, exported once per session
    assert check_parity(heads, path, trained.prepared.test, 1000) <= PARITY_ATOL * 10
    with torch.no_grad():
        heads.model.towers[0].out.bias += 0.5  # the torch side moves, the ONNX file does not
    try:
        with pytest.raises(ExportError, match="differs from PyTorch"):
            check_parity(heads, path, trained.prepared.test, 1000)
    finally:
        with torch.no_grad():
            heads.model.towers[0].out.bias -= 0.5


def test_tampered_bundle_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["parity_sample"]["outputs"]["click"][0] += 0.01
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="parity check failed on 'click'"):
        load_bundle(copy)


@pytest.mark.slow
@pytest.mark.parametrize("arch, keys", [("cgc", {"shared_experts": 2, "task_experts": 1}),
                                        ("ple", {"shared_experts": 1, "task_experts": 1, "levels": 2})])
def test_cgc_and_ple_export_to_the_same_bundle_contract_with_parity(trained, tmp_path: Path, arch: str,
                                                                    keys: dict) -> None:
    model = as_arch(trained, arch, expert_dropout=0.1, **keys)
    out = export_bundle(model, tmp_path / arch)
    bundle = load_bundle(out)  # sha256, io names and the parity sample, as the server checks them
    assert bundle.manifest.model_args["arch"] == arch
    assert bundle.manifest.task_names == trained.spec.task_names()
    heads = export_heads(model.model, model.spec, model.prepared.scalers)
    inputs = D.feature_inputs(model.prepared.splits.test, bundle.manifest.features)
    assert_parity(bundle, heads, inputs)


@pytest.mark.slow
@pytest.mark.parametrize("keys", [{"numeric_embedding": "ple", "numeric_bins": 8}, {"numeric_embedding": "periodic"},
                                  {"cross_layers": 2}])
def test_numeric_embeddings_and_cross_layers_export_with_parity(trained, tmp_path: Path, keys: dict) -> None:
    """The bins, frequencies and cross layers are inside the graph: the served model equals torch's,
    on real rows and on values far outside the training range (clipped by the shared encoder)."""
    model = as_arch(trained, "mmoe", num_experts=2, expert_dropout=0.1, **keys)
    bundle = load_bundle(export_bundle(model, tmp_path / "b"))
    assert bundle.manifest.model_args["numeric_embedding"] == keys.get("numeric_embedding", "ple_auto")
    # Numeric embeddings keep per-feature blocks, so the graph still splits by input source; a cross
    # layer multiplies the whole input elementwise, so that export falls back to the unsplit graph.
    assert bundle.manifest.input_layout == ("full" if "cross_layers" in keys else "split")
    heads = export_heads(model.model, model.spec, model.prepared.scalers)
    rows = model.prepared.splits.test.slice(0, 50).to_pylist()
    extreme = [{**r, **{f.name: 1e30 * (-1) ** i for i, f in enumerate(bundle.manifest.features.numeric)}}
               for r in rows]
    assert_parity(bundle, heads, D.feature_inputs(model.prepared.splits.test, bundle.manifest.features))
    columns = {f.name: [r[f.name] for r in extreme] for f in bundle.manifest.features.all()}
    assert_parity(bundle, heads, bundle.manifest.features.encode_columns(columns, len(extreme)))


@pytest.mark.slow
def test_ple_auto_exports_with_parity_and_its_binned_features_in_the_manifest(trained, tmp_path: Path) -> None:
    """Some features binned on each input side (user: feature 0; item: feature 2), the others as numbers: the
    split graph embeds each side apart, and the served model equals torch's, also far outside the training range."""
    model = as_ple_auto(trained, [0, 2])
    bundle = load_bundle(export_bundle(model, tmp_path / "b"))
    args = bundle.manifest.model_args
    assert (args["numeric_embedding"], args["numeric_binned"]) == ("ple_auto", [0, 2])
    assert len(args["numeric_edges"]) == 2 and bundle.manifest.input_layout == "split"
    sources = {f.source for f in bundle.manifest.features.numeric}
    assert {"user", "item"} <= sources
    heads = export_heads(model.model, model.spec, model.prepared.scalers)
    assert_parity(bundle, heads, D.feature_inputs(model.prepared.splits.test, bundle.manifest.features))
    rows = model.prepared.splits.test.slice(0, 50).to_pylist()
    extreme = [{**r, **{f.name: 1e30 * (-1) ** i for i, f in enumerate(bundle.manifest.features.numeric)}}
               for r in rows]
    columns = {f.name: [r[f.name] for r in extreme] for f in bundle.manifest.features.all()}
    assert_parity(bundle, heads, bundle.manifest.features.encode_columns(columns, len(extreme)))
