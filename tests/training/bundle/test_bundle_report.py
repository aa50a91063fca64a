"""The bundle's report.md and PNGs describe the run that produced it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import image

from training.bundle.report import CURVES_FILE, HEATMAP_FILE, REPORT_FILE, summary_table, training_summary


def test_report_names_data_metrics_gates_and_timing(bundle_dir: Path, trained) -> None:
    text = (bundle_dir / REPORT_FILE).read_text()
    rows = trained.prepared.splits
    assert f"train {rows.train.num_rows:,}, valid {rows.valid.num_rows:,}, test {rows.test.num_rows:,}" in text
    auc = trained.metrics["test"]["tasks"]["click"]["auc"]
    assert f"| click | auc | {trained.metrics['valid']['tasks']['click']['auc']:.4f} | {auc:.4f} |" in text
    for task in trained.spec.task_names():
        assert f"| {task} |" in text
    assert "Gate utilization" in text and "effective experts" in text
    assert f"{len(trained.history)} epochs" in text and "samples/s" in text
    assert f"]({CURVES_FILE})" in text and f"]({HEATMAP_FILE})" in text


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
