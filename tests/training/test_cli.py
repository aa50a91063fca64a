"""`ranker`: help for every command, train -> bundle + summary, evaluate a bundle, error exits."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from service.contract.bundle import load_bundle
from tests.conftest import DEMO_SPEC
from training.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args", [["--help"], ["demo-data", "--help"], ["train", "--help"],
                                  ["evaluate", "--help"], ["publish", "--help"], ["experiment", "report", "--help"],
                                  ["compare", "--help"]])
def test_help_works(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_demo_data_writes_partitions_and_prints_the_ceiling(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo-data", str(tmp_path / "d"), "--rows", "3000", "--days", "3"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "d").glob("date=*/part-0.parquet"))) == 3
    assert "best possible" in result.output and "auc" in result.output


@pytest.mark.slow  # trains and exports a bundle (about 3 s); train's pieces run in test-fast (conftest's `trained`)
def test_train_writes_a_verified_bundle_and_prints_a_summary(tmp_path: Path) -> None:
    data = tmp_path / "d"
    assert runner.invoke(app, ["demo-data", str(data), "--rows", "4000", "--no-ceiling"]).exit_code == 0
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["train"].update(epochs=2, threads=1, parity_rows=200)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    out = tmp_path / "bundle"
    result = runner.invoke(app, ["train", str(spec), "--data", str(data), "--out", str(out),
                                 "--registry", str(tmp_path / "reg"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "ndcg@10" in result.output and "click" in result.output
    assert "published demo version 1" in result.output
    # Test metrics are opt-in (--eval-test): not printed, not stored, and the summary says how to get them.
    assert "test metrics: not measured" in result.output
    assert "valid" in result.output.splitlines()[0] and "test" not in result.output.splitlines()[0]
    manifest = load_bundle(out).manifest
    assert "valid" in manifest.metrics and "test" not in manifest.metrics
    assert "Test metrics were not measured" in (out / "report.md").read_text()
    log = [json.loads(line) for line in (tmp_path / "bundle.logs" / "train_log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in log] == [1, 2]
    assert {"seconds", "samples_per_second", "train_loss", "valid_loss", "valid_task_loss", "task_weights"} <= set(log[0])


def test_evaluate_a_bundle_on_the_test_split_and_on_given_data(bundle_dir: Path, tiny_dir: Path, trained,
                                                               tmp_path: Path) -> None:
    # A spec whose own data is not there (data/ beside it is empty, whether or not `make run` wrote the
    # demo data into the checkout): the GBDT (auto) cannot be fitted, which is said, not silently left out.
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["eval"]["weights"] = str(DEMO_SPEC.parent / raw["eval"]["weights"])
    elsewhere = tmp_path / "spec.yaml"
    elsewhere.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(elsewhere), "--data",
                                 str(tiny_dir), "--json"])
    assert result.exit_code == 0, result.output
    whole = json.loads(result.output)
    assert whole["rows"] == sum(t.num_rows for t in (trained.prepared.splits.train, trained.prepared.splits.valid,
                                                     trained.prepared.splits.test))
    # NDCG per served profile of the spec's eval.weights (configs/weights.yaml), ranked as the server ranks.
    assert set(whole["profiles"]) == {"default", "balanced", "satisfaction_first", "engagement_first", "click_only"}
    assert all(0 < v <= 1 for v in whole["profiles"].values())
    text = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(elsewhere), "--data", str(tiny_dir)])
    assert text.exit_code == 0 and "click" in text.output and "ndcg@10" in text.output, text.output
    assert "served profiles" in text.output and "satisfaction_first" in text.output
    assert "GBDT baseline (eval.baseline): not measured" in text.output
    forced = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(elsewhere), "--data", str(tiny_dir),
                                 "--baseline"])
    assert forced.exit_code == 2 and "--baseline fits the GBDT on the spec's train split" in forced.stderr


def test_evaluate_matches_the_training_metrics_on_the_test_split(bundle_dir: Path, trained, tmp_path: Path) -> None:
    """Spec pointed at the training data: `evaluate` picks the same test split and scores it via ONNX."""
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["data"]["path"] = trained.spec.data.path
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    missing = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(spec), "--json"])
    assert missing.exit_code == 2 and "weights.yaml: cannot read the weights file" in missing.stderr
    raw["eval"]["weights"] = str(DEMO_SPEC.parent / "weights.yaml")
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    want = trained.metrics["test"]
    assert got["rows"] == want["rows"]
    assert got["tasks"]["click"]["auc"] == pytest.approx(want["tasks"]["click"]["auc"], abs=1e-4)
    assert got["tasks"]["rating"]["rmse"] == pytest.approx(want["tasks"]["rating"]["rmse"], rel=1e-4)
    # ... and exactly what the bundle stored at training time (one measurement, on the bundle itself)
    stored = load_bundle(bundle_dir).manifest.metrics["test"]
    assert (got["tasks"], got["ndcg@10"], got["profiles"]) == (stored["tasks"], stored["ndcg@10"], stored["profiles"])
    # The GBDT baseline (eval.baseline auto, 8k training rows): refitted on the same train split with the
    # bundle's encoders, it scores the test rows exactly as the one measured at training time did.
    assert got["baseline"]["tasks"]["click"]["auc"] == pytest.approx(trained.baseline["test"]["tasks"]["click"]["auc"])
    assert got["baseline"]["tasks"]["rating"]["rmse"] == pytest.approx(trained.baseline["test"]["tasks"]["rating"]["rmse"])
    # ... and so does LambdaMART (the data has requests): refitted exactly, the same NDCG on the same rows.
    ranker = got["baseline"]["lambdamart"]
    assert ranker["ndcg@10"] == trained.baseline["lambdamart"]["test"]["ndcg@10"]
    assert ranker["iterations"] == trained.baseline["lambdamart"]["iterations"]
    text = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(spec)])
    assert "GBDT" in text.output and "lead" in text.output
    lead = got["ndcg@10"] - ranker["ndcg@10"]
    assert "LambdaMART (LightGBM lambdarank, same features, split and gain; " in text.stdout
    assert f"ndcg@10 {ranker['ndcg@10']:.4f}, the model's lead {lead:+.4f}" in text.stdout
    ahead = f"warning: the LambdaMART baseline (LightGBM lambdarank) is ahead on ndcg@10 by {-lead:.4f} (test)"
    assert (ahead in text.stderr) is (round(lead, 4) < 0), text.stderr
    skipped = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(spec), "--json", "--no-baseline"])
    assert "baseline" not in json.loads(skipped.output)


def test_evaluate_errors_name_the_problem(bundle_dir: Path, demo_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", str(tmp_path / "nope"), "--spec", str(DEMO_SPEC), "--data",
                                 str(demo_dir)])
    assert result.exit_code == 2 and "manifest" in result.stderr
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["tasks"].append({"name": "share", "type": "binary", "group": "engagement", "column": "click"})
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(spec), "--data", str(demo_dir)])
    assert result.exit_code == 2 and "share" in result.stderr and "no head" in result.stderr
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["features"]["numeric"] = [f for f in raw["features"]["numeric"] if f["name"] != "hour"]
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(spec), "--data", str(demo_dir)])
    assert result.exit_code == 2 and "'hour'" in result.stderr


@pytest.mark.slow
def test_train_with_eval_test_prints_and_stores_test_metrics(tmp_path: Path, tiny_dir: Path) -> None:
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["train"].update(epochs=1, threads=1, parity_rows=200)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["train", str(spec), "--data", str(tiny_dir), "--out", str(tmp_path / "b"),
                                 "--no-progress", "--eval-test"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "valid split:" and "test split:" in lines
    assert "test" in load_bundle(tmp_path / "b").manifest.metrics


def test_eval_test_without_a_test_split_is_refused_before_training(tmp_path: Path, tiny_dir: Path) -> None:
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["data"]["test_fraction"] = 0
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["train", str(spec), "--data", str(tiny_dir), "--out", str(tmp_path / "b"),
                                 "--eval-test"])
    assert result.exit_code == 2 and "no test split" in result.stderr


def test_evaluate_accepts_data_without_time_or_request_columns(bundle_dir: Path, tiny_dir: Path,
                                                                tmp_path: Path) -> None:
    """A plain table (no timestamp, no request id) is what training accepts, so evaluate accepts it too."""
    plain = pq.read_table(tiny_dir).drop_columns(["ts", "request_id"])
    pq.write_table(plain, tmp_path / "plain.parquet")
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    for key in ("timestamp", "request_id"):
        del raw["data"][key]
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(spec), "--data",
                                 str(tmp_path / "plain.parquet"), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["rows"] == plain.num_rows and got["ndcg@10"] is None and got["requests"] is None
    # The spec still naming request_id: the error names the column, its key, and what to do.
    result = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(DEMO_SPEC), "--data",
                                 str(tmp_path / "plain.parquet")])
    assert result.exit_code == 2
    assert "'request_id' (data.request_id)" in result.stderr and "leave the key out" in result.stderr


def test_evaluate_without_a_test_split_says_to_pass_data(bundle_dir: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["data"]["test_fraction"] = 0
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["evaluate", str(bundle_dir), "--spec", str(spec)])
    assert result.exit_code == 2 and "no test split" in result.stderr and "--data" in result.stderr
