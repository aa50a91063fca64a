"""One definition of every reported metric (issue 21, item 1): `ranker train`'s summary, the manifest, report.md
and `ranker evaluate` give the same numbers for the same model on the same rows, the model's own heads and
the served (calibrated, smeared) heads side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from service.contract.bundle import load_bundle
from tests.conftest import DEMO_SPEC
from tests.retrain_helpers import pre_split
from training.cli import app

runner = CliRunner()


@pytest.mark.slow  # trains and exports through the CLI (about 10 s)
def test_train_and_evaluate_report_the_same_numbers(tmp_path: Path, tiny_dir: Path) -> None:
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    files = pre_split(tiny_dir, tmp_path)
    raw["data"] = {"train": files["train"], "valid": files["valid"], "test": files["test"],
                   "request_id": "request_id", "item_id": "item_id"}
    raw["eval"]["weights"] = str(DEMO_SPEC.parent / raw["eval"]["weights"])
    raw["train"].update(epochs=2, threads=1, parity_rows=200)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    trained = runner.invoke(app, ["train", str(spec), "--out", str(tmp_path / "b"), "--no-progress"])
    assert trained.exit_code == 0, trained.output
    evaluated = runner.invoke(app, ["evaluate", str(tmp_path / "b"), "--spec", str(spec), "--data", files["valid"],
                                    "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    got, stored = json.loads(evaluated.output), load_bundle(tmp_path / "b").manifest.metrics
    assert got["tasks"] == stored["valid"]["tasks"]
    assert (got["ndcg@10"], got["profiles"]) == (stored["valid"]["ndcg@10"], stored["valid"]["profiles"])
    assert got["baseline"]["tasks"] == stored["baseline"]["valid"]["tasks"]  # the GBDT, refitted, agrees too
    assert got["baseline"]["lambdamart"]["ndcg@10"] == stored["baseline"]["lambdamart"]["valid"]["ndcg@10"]  # LambdaMART too
    # watch_time is trained on log1p and served smeared: both heads are shown, labelled, and they differ.
    watch = got["tasks"]["watch_time"]
    assert watch["served"]["rmse"] != watch["rmse"] and watch["served"]["rmse_log1p"] != watch["rmse_log1p"]
    assert {"constant", "skill"} <= set(watch) and "skill" in watch["served"]
    text = runner.invoke(app, ["evaluate", str(tmp_path / "b"), "--spec", str(spec), "--data", files["valid"]])
    for key in ("rmse", "rmse_log1p"):
        row = ["watch_time", key, f"{watch[key]:.4f}", f"{watch['served'][key]:.4f}"]  # task, metric, model, served
        for output in (trained.stdout, text.stdout):
            assert row in [line.split()[:4] for line in output.splitlines()], (row, output)
    assert "served: as the server returns them" in trained.stdout
    report = (tmp_path / "b" / "report.md").read_text()
    assert f"| watch_time | rmse_log1p | {watch['rmse_log1p']:.4f} | {watch['served']['rmse_log1p']:.4f} |" in report
