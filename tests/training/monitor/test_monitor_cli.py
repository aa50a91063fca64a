"""`ranker monitor drift` on the demo bundle: its own validation rows, a shifted world, the log's shape."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from typer.testing import CliRunner

from service.contract.bundle import MANIFEST_FILE, read_manifest
from training.bundle.calibration import calibrate_columns
from training.bundle.export import holdout_outputs
from training.cli import app

runner = CliRunner()


def _drift(bundle: Path, data: Path, *args: str):
    return runner.invoke(app, ["monitor", "drift", "--bundle", str(bundle), "--data", str(data), *args])


def _verdicts(out: Path) -> dict[str, dict]:
    return {v["name"]: v for v in json.loads((out / "drift.json").read_text())["verdicts"] if v["kind"] != "head"}


def test_export_records_the_training_distribution(bundle_dir: Path, trained) -> None:
    dist = read_manifest(bundle_dir).training_distribution
    assert dist is not None and dist.rows == trained.prepared.splits.rows("train")
    assert set(dist.numeric) == {f.name for f in trained.prepared.encoders.numeric}
    assert set(dist.categorical) == {f.name for f in trained.prepared.encoders.categorical}
    assert 5 <= len(dist.numeric["item_popularity"].edges) <= 9


def _same_world(tiny_dir: Path, path: Path) -> pa.Table:
    """3,000 rows drawn at random from the demo data the bundle was trained on (all splits): an unshifted sample.
    (The validation split alone is not one: 1,000 rows of 50 requests on the last day, new users among them.)"""
    table = ds.dataset(tiny_dir, partitioning="hive").to_table()
    sample = table.take(np.random.default_rng(1).choice(table.num_rows, 3_000, replace=False))
    pq.write_table(sample, path)
    return sample


def test_an_unshifted_sample_raises_no_alert(bundle_dir: Path, tiny_dir: Path, tmp_path: Path) -> None:
    _same_world(tiny_dir, tmp_path / "same.parquet")
    result = _drift(bundle_dir, tmp_path / "same.parquet", "--out", str(tmp_path / "report"))
    assert result.exit_code == 0, result.output
    verdicts = _verdicts(tmp_path / "report")
    assert all(v["status"] in ("ok", "warn") for v in verdicts.values()), verdicts
    assert verdicts["hour"]["psi"] < 0.1
    assert "| item_popularity | numeric |" in (tmp_path / "report" / "drift.md").read_text()


def test_a_shifted_world_is_flagged_and_an_unshifted_feature_is_not(bundle_dir: Path, tmp_path: Path) -> None:
    from training.data.demo import DemoConfig, write_demo

    write_demo(tmp_path / "shifted", DemoConfig(rows=20_000, seed=0, drift=1.5))
    result = _drift(bundle_dir, tmp_path / "shifted", "--out", str(tmp_path / "report"))
    assert result.exit_code == 1, result.output
    verdicts = _verdicts(tmp_path / "report")
    assert verdicts["item_popularity"]["status"] == "alert"
    assert "item_popularity" in result.output.splitlines()[-1]  # stderr's alert line (mixed in by CliRunner)
    assert verdicts["hour"]["status"] == "ok" and verdicts["device"]["status"] == "ok"


def test_a_deliberately_shifted_column_is_the_one_flagged(bundle_dir: Path, tiny_dir: Path, tmp_path: Path) -> None:
    valid = _same_world(tiny_dir, tmp_path / "same.parquet")
    shifted = valid.set_column(valid.schema.get_field_index("hour"), "hour", pc.add(valid.column("hour"), 6.0))
    pq.write_table(shifted, tmp_path / "shifted.parquet")
    result = _drift(bundle_dir, tmp_path / "shifted.parquet", "--out", str(tmp_path / "report"))
    assert result.exit_code == 1, result.output
    verdicts = _verdicts(tmp_path / "report")
    assert verdicts["hour"]["status"] == "alert"
    assert [name for name, v in verdicts.items() if v["status"] == "alert"] == ["hour"]


def _log_rows(bundle_dir: Path, trained, heads_shift: float = 0.0) -> pa.Table:
    """The validation rows in the impression log's shape: ts, model_name, head_<task>, defaulted/clipped lists."""
    manifest = read_manifest(bundle_dir)
    valid, n = trained.prepared.splits.valid, trained.prepared.splits.rows("valid")
    served = calibrate_columns(manifest.tasks, holdout_outputs(bundle_dir / "model.onnx", trained.prepared.valid,
                                                               manifest.features, manifest.input_layout))
    columns = {"ts": pa.array([datetime(2026, 12, 1, tzinfo=UTC)] * n, pa.timestamp("ms", tz="UTC")),
               "model_name": pa.array([manifest.model_name] * n)}
    columns |= {f"head_{t.name}": pa.array(served[:, j].astype(np.float64) + heads_shift)
                for j, t in enumerate(manifest.tasks)}
    columns |= {f.name: valid.column(f.name) for f in manifest.features.all()}
    columns["defaulted"] = pa.array([["hour"] if i % 2 else [] for i in range(n)], pa.list_(pa.string()))
    columns["clipped"] = pa.array([[] for _ in range(n)], pa.list_(pa.string()))
    return pa.table(columns)


def test_impression_log_rows_judge_heads_and_the_logged_flags(bundle_dir: Path, trained, tmp_path: Path) -> None:
    pq.write_table(_log_rows(bundle_dir, trained), tmp_path / "log.parquet")
    result = _drift(bundle_dir, tmp_path / "log.parquet", "--out", str(tmp_path / "report"))
    assert result.exit_code == 1, result.output
    report = json.loads((tmp_path / "report" / "drift.json").read_text())
    hour = next(v for v in report["verdicts"] if v["name"] == "hour")
    assert hour["status"] == "alert" and hour["defaulted"] == 0.5  # half the rows name it in the log's list
    assert hour["note"] == "defaulted +50.0% over training"
    heads = {v["name"]: v for v in report["verdicts"] if v["kind"] == "head"}
    assert all(v["status"] == "ok" for v in heads.values()), heads
    pq.write_table(_log_rows(bundle_dir, trained, heads_shift=0.3), tmp_path / "log.parquet")
    report_dir = tmp_path / "shifted"
    assert _drift(bundle_dir, tmp_path / "log.parquet", "--out", str(report_dir)).exit_code == 1
    assert "head click" in json.loads((report_dir / "drift.json").read_text())["alerts"]
    # --start after every row: nothing left
    late = _drift(bundle_dir, tmp_path / "log.parquet", "--start", "2027-01-01")
    assert late.exit_code == 2 and "no rows where" in late.output


def test_a_manifest_without_the_distribution_says_what_it_cannot_judge(bundle_dir: Path, trained,
                                                                        tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    manifest = json.loads((bundle_dir / MANIFEST_FILE).read_text())
    del manifest["training_distribution"]
    (old / MANIFEST_FILE).write_text(json.dumps(manifest))
    pq.write_table(trained.prepared.splits.valid, tmp_path / "valid.parquet")
    result = _drift(old, tmp_path / "valid.parquet")
    assert result.exit_code == 2 and "nothing to judge" in result.output
    assert "no training distribution recorded" in result.output
    pq.write_table(_log_rows(bundle_dir, trained), tmp_path / "log.parquet")
    result = _drift(old, tmp_path / "log.parquet")  # the heads can still be judged, on score_stats
    assert result.exit_code == 0, result.output
    assert "cannot judge: user_id" in result.output


def test_bad_input_exits_2_naming_it(bundle_dir: Path, tmp_path: Path) -> None:
    missing = _drift(bundle_dir, tmp_path / "nowhere")
    assert missing.exit_code == 2 and "nowhere: no Parquet files" in missing.output
    pq.write_table(pa.table({"unrelated": [1, 2]}), tmp_path / "other.parquet")
    other = _drift(bundle_dir, tmp_path / "other.parquet")
    assert other.exit_code == 2 and "none of the bundle's feature columns" in other.output
    shutil.copytree(bundle_dir, tmp_path / "b")
    (tmp_path / "b" / MANIFEST_FILE).unlink()
    assert "no manifest" in _drift(tmp_path / "b", tmp_path / "other.parquet").output
