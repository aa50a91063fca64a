"""The bundle's report.md and PNGs describe the run that produced it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from matplotlib import image

from service.contract.bundle import MANIFEST_FILE
from tests.training.conftest import as_arch, as_ple_auto
from training.bundle.report import (
    CURVES_FILE,
    HEATMAP_FILE,
    REPORT_FILE,
    render_bundle_report,
    summary_table,
    training_summary,
)


def test_report_names_data_metrics_gates_and_timing(bundle_dir: Path, trained) -> None:
    text = (bundle_dir / REPORT_FILE).read_text()
    rows = trained.prepared.splits
    assert f"train {rows.train.num_rows:,}, valid {rows.valid.num_rows:,}, test {rows.test.num_rows:,}" in text
    manifest = json.loads((bundle_dir / MANIFEST_FILE).read_text())["metrics"]  # measured on the bundle
    for split in ("valid", "test"):
        auc = manifest[split]["tasks"]["click"]["auc"]
        assert f"| click | auc | {auc:.4f} |" in text
        assert abs(auc - trained.metrics[split]["tasks"]["click"]["auc"]) < 1e-4  # torch and onnxruntime agree
    for task in trained.spec.task_names():
        assert f"| {task} |" in text
    assert "Gate utilization" in text and "effective experts" in text
    assert f"{len(trained.history)} epochs" in text and "samples/s" in text
    assert f"]({CURVES_FILE})" in text and f"]({HEATMAP_FILE})" in text
    assert "weights kept: a moving average over 2 epochs (train.ema_epochs)" in text


def test_report_says_when_the_raw_weights_were_kept(trained) -> None:
    raw = trained.spec.model_copy(deep=True)
    raw.train.ema_epochs = None
    text = render_bundle_report(dataclasses.replace(trained, spec=raw), {})
    assert "weights kept: the raw weights (train.ema_epochs null)" in text


def test_pngs_are_real_images_of_a_readable_size(bundle_dir: Path) -> None:
    for name, min_w, min_h in ((CURVES_FILE, 800, 250), (HEATMAP_FILE, 300, 250)):
        img = image.imread(bundle_dir / name)
        h, w = img.shape[:2]
        assert w >= min_w and h >= min_h, (name, w, h)
        assert np.ptp(img[..., :3]) > 0.5  # not a blank canvas


def test_summary_table_lists_every_task_metric(trained) -> None:
    table = summary_table(trained)
    for task in trained.spec.task_names():
        assert task in table
    assert "ndcg@10" in table and "rmse_log1p" in table
    s = training_summary(trained)
    assert s["epochs"] == len(trained.history) and s["samples_per_second"] > 0
    assert 1 <= s["best_epoch"] <= s["epochs"]


def model_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("- model:"))


def test_report_describes_the_architecture_actually_trained(trained) -> None:
    ple = render_bundle_report(as_arch(trained, "ple", shared_experts=2, task_experts=1, levels=2), {})
    assert "PLE: 2 levels of 1 expert(s) per task + 2 shared experts (128, 64)" in model_line(ple)
    assert "| task | own0 | shared0 | shared1 | on shared experts |" in ple
    assert "| level 1 | level 2 |" in ple  # shared-expert use per extraction level
    bottom = render_bundle_report(as_arch(trained, "shared_bottom"), {})
    assert "shared-bottom: one shared MLP (128, 64)" in model_line(bottom)
    assert "expert" not in model_line(bottom) and "Gate utilization" not in bottom
    mmoe = render_bundle_report(trained, {})
    assert "MMoE: 4 shared experts (128, 64), one gate per task, expert dropout 0.1" in model_line(mmoe)


def test_report_names_the_numeric_features_ple_auto_binned(trained) -> None:
    names = [f.name for f in trained.prepared.encoders.numeric]
    line = model_line(render_bundle_report(as_ple_auto(trained, [0, 2]), {}))
    assert f"numeric features {[names[0], names[2]]} piecewise-linear encoded" in line
    assert f"{[n for j, n in enumerate(names) if j not in (0, 2)]} as numbers" in line
    none = model_line(render_bundle_report(as_ple_auto(trained, []), {}))
    assert "ple_auto binned no numeric feature" in none


def test_report_states_each_heads_best_epoch(trained) -> None:
    text = render_bundle_report(trained, {})
    assert "## Per-task early stopping" in text
    for task, head in trained.stopping["heads"].items():
        assert f"| {task} | {head['metric']} | {head['best_epoch']} |" in text
