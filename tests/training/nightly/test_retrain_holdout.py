"""A retrain never gates on rows CURRENT trained on when that can be known (issue 21, item 2): the data
lineage every bundle records, the overlap rules, and `ranker retrain` on a pre-split spec."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from service.registry import REPORT_JSON, Registry
from tests.conftest import DEMO_SPEC
from tests.retrain_helpers import pre_split
from training.cli import app
from training.data.lineage import overlap

runner = CliRunner()


def lin(kind: str, files: dict, train_time=None, holdout_time=None, **rule) -> dict:
    return {"rule": {"kind": kind, **rule}, "files": files, "train_time": train_time, "holdout_time": holdout_time}


def test_a_holdout_carved_from_currents_training_file_overlaps() -> None:
    current = lin("files", {"train": {"/d/train.parquet": 10}, "test": {"/d/test.parquet": 2}})
    resplit = lin("random", {"path": {"/d/train.parquet": 10}}, seed=0, valid_fraction=0.1, test_fraction=0.1,
                  request_id=None, start=None, end=None)
    why = overlap(current, resplit)
    assert why is not None and "train.parquet" in why and "pre-split files" in why
    assert overlap(current, current) is None  # the same files: the test file never trained CURRENT
    assert overlap(current, lin("files", {"train": {"/d/new.parquet": 9}, "test": {"/d/test.parquet": 2}})) is None
    assert overlap(None, resplit) is None  # a CURRENT from before lineage was recorded: nothing to compare


def test_random_splits_overlap_once_the_files_change_and_column_or_hash_splits_never() -> None:
    rule = {"seed": 0, "valid_fraction": 0.1, "test_fraction": 0.1, "request_id": "r", "start": None, "end": None}
    before = lin("random", {"path": {"/d/a.parquet": 10}}, **rule)
    assert overlap(before, before) is None
    grown = lin("random", {"path": {"/d/a.parquet": 10, "/d/b.parquet": 5}}, **rule)
    assert "another permutation" in overlap(before, grown)
    hashed = {k: v for k, v in rule.items() if k not in ("start", "end")}
    assert overlap(lin("hash", {"path": {"/d/a.parquet": 10}}, **hashed),
                   lin("hash", {"path": {"/d/a.parquet": 10, "/d/b.parquet": 5}}, **hashed)) is None
    column = lin("column", {"path": {"/d/a.parquet": 10}}, split_column="fold")
    assert overlap(column, lin("column", {"path": {"/d/a.parquet": 11}}, split_column="fold")) is None


def test_time_splits_overlap_only_when_the_holdout_starts_before_currents_training_rows_end() -> None:
    current = lin("time", {"path": {"/d/a.parquet": 10}}, ["2026-01-01", "2026-01-08"], timestamp="ts")
    later = lin("time", {"path": {"/d/a.parquet": 10}}, holdout_time=["2026-01-10", "2026-01-11"], timestamp="ts")
    earlier = lin("time", {"path": {"/d/a.parquet": 10}}, holdout_time=["2026-01-05", "2026-01-06"], timestamp="ts")
    assert overlap(current, later) is None
    assert "before CURRENT's training rows end" in overlap(current, earlier)
    assert overlap(current, {**earlier, "holdout_time": None}) is None  # before training: judged once the split is known


@pytest.fixture
def pre_split_spec(tmp_path: Path, tiny_dir: Path) -> tuple[Path, dict[str, str], str]:
    """A pre-split spec (train / valid / test files, no timestamp) and a registry whose CURRENT trained on it."""
    files = pre_split(tiny_dir, tmp_path / "data")
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["data"] = {**files, "request_id": "request_id", "item_id": "item_id"}
    raw["eval"]["weights"] = str(DEMO_SPEC.parent / raw["eval"]["weights"])
    raw["train"].update(epochs=1, threads=1, parity_rows=200)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    registry = str(tmp_path / "registry")
    result = runner.invoke(app, ["train", str(spec), "--out", str(tmp_path / "b"), "--registry", registry,
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    return spec, files, registry


@pytest.mark.slow  # trains three small models (about 15 s)
def test_retrain_refuses_a_holdout_re_split_from_currents_training_file(pre_split_spec, tmp_path: Path) -> None:
    spec, files, registry = pre_split_spec
    lineage = Registry(registry, "demo").read_file(1, "manifest.json")
    assert json.loads(lineage)["data_window"]["lineage"]["rule"]["kind"] == "files"
    refused = runner.invoke(app, ["retrain", str(spec), "--registry", registry, "--data", files["train"],
                                  "--work-dir", str(tmp_path / "w1")])
    assert refused.exit_code == 2, refused.output
    assert "the holdout may hold rows CURRENT v1 trained on" in refused.stderr
    assert "--train NEW_ROWS" in refused.stderr and "--allow-holdout-overlap" in refused.stderr
    assert Registry(registry, "demo").versions() == [1]  # refused before training: nothing published
    forced = runner.invoke(app, ["retrain", str(spec), "--registry", registry, "--data", files["train"],
                                 "--allow-holdout-overlap", "--work-dir", str(tmp_path / "w2")])
    assert forced.exit_code in (0, 3), forced.output
    report = json.loads((tmp_path / "w2" / REPORT_JSON).read_text())
    assert "train.parquet" in report["holdout"]["overlap"]
    assert "**WARNING: the holdout may hold rows CURRENT v1 trained on" in forced.stdout
    # New training rows of the pre-split spec: the spec's own test file stays the holdout, nothing overlaps.
    new = tmp_path / "new.parquet"
    pq.write_table(pq.read_table(files["train"]).slice(1000), new)
    fresh = runner.invoke(app, ["retrain", str(spec), "--registry", registry, "--train", str(new),
                                "--work-dir", str(tmp_path / "w3")])
    assert fresh.exit_code in (0, 3), fresh.output
    report = json.loads((tmp_path / "w3" / REPORT_JSON).read_text())
    assert report["holdout"]["overlap"] is None and report["holdout"]["rows"] == pq.read_metadata(files["test"]).num_rows
    assert "holdout rows (no timestamp: the spec's test file)" in fresh.stdout
