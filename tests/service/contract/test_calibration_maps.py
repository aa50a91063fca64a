"""Calibration maps in the manifest: what they compute, and that bundles without them still load."""

import json
import shutil

import numpy as np
import pytest
from pydantic import ValidationError

from service.contract.bundle import BundleError, Manifest, TaskInfo, load_bundle, read_manifest
from service.contract.calibration import Isotonic, Platt, Smearing, calibrate


def test_platt_isotonic_and_smearing_compute_their_formulas():
    p = np.array([0.1, 0.5, 0.9], np.float32)
    q = p.astype(np.float64)
    logit = np.log(q / (1 - q))
    np.testing.assert_allclose(Platt(a=2.0, b=-1.0).apply(p), 1 / (1 + np.exp(-(2 * logit - 1))), rtol=1e-12)
    iso = Isotonic(x=[0.2, 0.6], y=[0.1, 0.5])
    np.testing.assert_allclose(iso.apply(np.array([0.0, 0.4, 1.0])), [0.1, 0.3, 0.5])  # flat outside
    np.testing.assert_allclose(Smearing(factor=1.5).apply(np.array([0.0, 9.0])), [0.5, 14.0])
    assert calibrate(None, p) is p
    assert calibrate(Platt(a=1.0, b=0.0), p).dtype == np.float32


@pytest.mark.parametrize("bad", [
    {"kind": "isotonic", "x": [0.5, 0.2], "y": [0.1, 0.2]},
    {"kind": "isotonic", "x": [0.1, 0.2], "y": [0.3, 0.2]},
    {"kind": "isotonic", "x": [0.1, 0.2], "y": [0.3, 1.2]},
    {"kind": "smearing", "factor": 0.0},
    {"kind": "platt", "a": float("nan"), "b": 0.0},
    {"kind": "sqrt"},
])
def test_bad_calibrations_are_refused(bad):
    with pytest.raises(ValidationError):
        TaskInfo.model_validate({"name": "t", "type": "binary", "group": "engagement", "output": "t",
                                 "calibration": bad})


def test_a_calibrated_manifest_must_say_format_2(full_bundle_dir):
    data = json.loads((full_bundle_dir / "manifest.json").read_text())
    assert data["format_version"] == 2 and any(t["calibration"] for t in data["tasks"])
    data["format_version"] = 1  # what a server from before calibration would accept
    with pytest.raises(ValidationError, match="needs format_version 2"):
        Manifest.model_validate(data)


def test_a_bundle_from_before_calibration_still_loads_and_serves_raw_heads(full_bundle_dir, tmp_path):
    """Format 1, no `calibration` keys at all: the server loads it and serves the graph's outputs."""
    bundle_dir = full_bundle_dir
    old = tmp_path / "old"
    shutil.copytree(bundle_dir, old)
    data = json.loads((old / "manifest.json").read_text())
    data["format_version"] = 1
    for task in data["tasks"]:
        del task["calibration"]
    bundle = load_bundle(bundle_dir)
    raw = bundle.session.run(bundle.output_names, _inputs(bundle))
    data["parity_sample"]["outputs"] = {t["output"]: np.asarray(o).reshape(-1).tolist()
                                        for t, o in zip(data["tasks"], raw, strict=True)}
    (old / "manifest.json").write_text(json.dumps(data))
    loaded = load_bundle(old)
    assert read_manifest(old).format_version == 1 and all(t.calibration is None for t in loaded.manifest.tasks)
    got = loaded.predict(_inputs(loaded))
    for t, o in zip(loaded.manifest.tasks, raw, strict=True):
        np.testing.assert_array_equal(got[t.name], np.asarray(o).reshape(-1))


def test_a_calibration_the_parity_sample_does_not_match_is_refused(bundle_dir, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(bundle_dir, changed)
    data = json.loads((changed / "manifest.json").read_text())
    watch = next(t for t in data["tasks"] if t["name"] == "watch_time")
    watch["calibration"]["factor"] *= 1.5
    (changed / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="parity check failed on 'watch_time'"):
        load_bundle(changed)


def _inputs(bundle):
    rows = bundle.manifest.parity_sample.rows
    names = [f.name for f in bundle.manifest.features.all()]
    return bundle.manifest.features.encode_columns({n: [r.get(n) for r in rows] for n in names}, len(rows))
