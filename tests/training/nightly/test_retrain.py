"""The nightly job end to end on a local registry: first model on floors, a corrupted candidate
rejected by the metric gate with CURRENT untouched, a good warm-started one promoted, a busy
registry, and the data window options."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from retrain_helpers import quick_spec, shuffle_training_labels, write_spec
from typer.testing import CliRunner

from service.contract.bundle import load_bundle
from service.registry import REPORT_JSON, Registry
from training.cli import app
from training.nightly.retrain import (
    EXIT_BUSY,
    EXIT_PROMOTED,
    EXIT_REJECTED,
    RetrainOptions,
    apply_window,
    last_days_window,
    retrain,
)
from training.spec import RankerSpec

MODEL = "demo"


@pytest.fixture
def seeded(tmp_path: Path, quality_bundle_dir: Path) -> Registry:
    """A registry whose CURRENT (v1) is the session's fully trained bundle."""
    reg = Registry(tmp_path / "registry", MODEL)
    reg.publish(quality_bundle_dir)
    return reg


def test_apply_window_sets_bounds_and_links_partitions(demo_spec: RankerSpec, demo_dir: Path, tmp_path: Path) -> None:
    opts = RetrainOptions(work_dir=tmp_path, start="2026-11-03", end="2026-11-10",
                          partitions=["date=2026-11-04", "date=2026-11-05"])
    spec = apply_window(demo_spec, opts)
    assert (spec.data.start, spec.data.end) == ("2026-11-03", "2026-11-10")
    assert sorted(p.name for p in Path(spec.data.path).iterdir()) == ["date=2026-11-04", "date=2026-11-05"]
    assert demo_spec.data.start is None and demo_spec.data.path == str(demo_dir)  # the input is not modified


def test_last_days_window_is_complete_utc_days() -> None:
    now = datetime(2026, 11, 15, 2, 30, tzinfo=timezone(timedelta(hours=5)))  # 2026-11-14 21:30 UTC
    assert last_days_window(14, now) == ("2026-10-31", "2026-11-14")


@pytest.mark.slow
def test_corrupted_labels_are_rejected_by_the_metric_gate(seeded: Registry, demo_spec: RankerSpec, demo_dir: Path,
                                                          tmp_path: Path) -> None:
    corrupted = shuffle_training_labels(demo_dir, tmp_path / "corrupted")
    spec_file = write_spec(quick_spec(demo_spec, corrupted), tmp_path / "spec.yaml")
    result = CliRunner().invoke(app, ["retrain", str(spec_file), "--registry", str(tmp_path / "registry"),
                                      "--work-dir", str(tmp_path / "work")])
    assert result.exit_code == EXIT_REJECTED, result.output
    assert seeded.current() == 1
    assert seeded.versions() == [1, 2]  # kept for review, never served
    report = seeded.report(2)
    assert report["decision"] == "rejected" and report["compared_with"] == 1
    assert "metric:click" in report["failed"]
    click = next(g for g in report["gates"] if g["gate"] == "metric" and g["subject"] == "click")
    assert click["value"] < 0.6 < click["threshold"] and click["margin"] < 0
    assert "rejected: version 2" in result.output
    assert json.loads((tmp_path / "work" / REPORT_JSON).read_text())["decision"] == "rejected"


@pytest.mark.slow
def test_good_warm_started_candidate_is_promoted(seeded: Registry, demo_spec: RankerSpec, tmp_path: Path) -> None:
    spec = quick_spec(demo_spec, auc_tolerance=0.02, rmse_tolerance=0.1)
    out = retrain(spec, seeded, RetrainOptions(work_dir=tmp_path / "work", warm_start=True))
    assert out.exit_code == EXIT_PROMOTED, out.report["failed"]
    assert seeded.current() == out.version == 2
    warm = out.report["warm_start"]
    assert warm["from_version"] == 1 and warm["skipped_tensors"] == []
    vocab = len(load_bundle(seeded.bundle_dir(2)).manifest.features.categorical[0].vocab)
    assert warm["embedding_rows_mapped"]["user_id"] == f"{vocab}/{vocab}"  # same data: every row carried over
    assert {g["gate"] for g in out.report["gates"]} >= {"parity", "finite", "metric", "mean_shift", "topk_overlap"}
    # The spec's eval.weights (configs/weights.yaml): one overlap row and one NDCG row per served profile.
    profiles = {"default", "balanced", "satisfaction_first", "engagement_first", "click_only"}
    for gate in ("topk_overlap", "ndcg"):
        assert {g["subject"] for g in out.report["gates"] if g["gate"] == gate} == profiles
    assert out.report["weights"]["profiles"] == sorted(profiles)
    assert seeded.report(2)["version"] == 2
    assert seeded.rollback() == 1


@pytest.mark.slow
def test_first_model_on_partitions_is_judged_by_floors(demo_spec: RankerSpec, demo_dir: Path, tmp_path: Path) -> None:
    parts = sorted(p.name for p in demo_dir.iterdir())[2:]  # the newest 12 days
    reg = Registry(tmp_path / "registry", MODEL)
    out = retrain(quick_spec(demo_spec, epochs=4), reg, RetrainOptions(work_dir=tmp_path / "work", partitions=parts))
    assert out.exit_code == EXIT_PROMOTED, out.report["failed"]
    assert reg.current() == 1 and out.report["compared_with"] is None
    assert {g["gate"] for g in out.report["gates"]} == {"parity", "finite", "floor", "weights"}
    expected_rows = sum(pq.read_metadata(f).num_rows for p in parts for f in (demo_dir / p).glob("*.parquet"))
    assert sum(out.report["rows"].values()) == expected_rows
    assert out.report["window"]["partitions"] == parts


@pytest.mark.slow
def test_busy_registry_exits_4_and_leaves_current(seeded: Registry, demo_spec: RankerSpec, tmp_path: Path) -> None:
    other = Registry(tmp_path / "registry", MODEL)
    with other.lock():  # another job is publishing right now
        out = retrain(quick_spec(demo_spec, epochs=1), seeded, RetrainOptions(work_dir=tmp_path / "work"))
    assert out.exit_code == EXIT_BUSY
    assert out.decision == "not published" and "locked by another publish" in out.report["notes"][0]
    assert seeded.current() == 1 and seeded.versions() == [1]
