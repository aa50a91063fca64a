"""`ranker compare` end to end: real training on a tiny spec, the files it writes, the budget, bad specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import DEMO_SPEC
from training.cli import app
from training.compare.render import JSON, MD, PNG

runner = CliRunner()
TASKS = ("click", "watch_time", "like")


@pytest.fixture(scope="module")
def tiny_compare_spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo spec with three tasks, one epoch of 256-row batches, on 2,000 generated rows."""
    from training.data.demo import DemoConfig, write_demo

    root = tmp_path_factory.mktemp("compare")
    write_demo(root / "data", DemoConfig(rows=2_000, seed=0))
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["data"]["path"] = str(root / "data")
    raw["tasks"] = [t for t in raw["tasks"] if t["name"] in TASKS]
    raw["train"].update(epochs=1, batch_size=256, threads=1)
    raw["eval"].pop("weights")
    raw["feedback"]["labels"].pop("rating")
    path = root / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_compare_writes_the_matrix_with_two_seeds_in_two_processes(tiny_compare_spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(tiny_compare_spec), "--seeds", "2", "--jobs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "8 runs (4 models x 2 seeds)" in result.stdout and "All planned runs ran." in result.stdout
    saved = json.loads((out / JSON).read_text())
    assert len(saved["records"]) == 8 and saved["skipped"] == []
    assert {(c["task"], c["variant"]) for c in saved["matrix"]} == {(t, "MTL (all tasks)") for t in TASKS}
    assert all(c["pairs"] == 2 and c["verdict"] in ("helps", "hurts", "within noise") for c in saved["matrix"])
    single = [r for r in saved["records"] if r["kind"] == "single"]
    assert sorted(r["tasks"] == [r["variant"].removeprefix("single-task ")] for r in single) == [True] * 6
    assert "rank" in next(r for r in saved["records"] if r["kind"] == "mtl")["tasks"]  # the spec's model as is
    md = (out / MD).read_text()
    assert "| watch_time RMSE (log1p) ↓ |" in md and "| like AUC ↑ |" in md and f"]({PNG})" in md
    assert (out / PNG).read_bytes()[:4] == b"\x89PNG"


def test_a_tiny_budget_skips_the_rest_and_says_which(tiny_compare_spec: Path, tmp_path: Path) -> None:
    # 1 ms: the first run starts at once (nothing has run yet), and no run of the tiny spec takes under 0.5 ms,
    # so none fits after it (with 0.5 s, a warm worker trained the tiny spec fast enough to start three more)
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(tiny_compare_spec), "--seeds", "2", "--jobs", "1", "--budget", "0.001",
                                 "--pairs", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / JSON).read_text())
    assert [r["variant"] for r in saved["records"]] == ["MTL (all tasks)"]  # the first run starts; none after it
    assert len(saved["skipped"]) == 2 * 7 - 1
    for text in (result.stdout, (out / MD).read_text()):
        assert "Skipped (13 of 14 runs)" in text
        assert "single-task click seeds 0, 1; single-task watch_time seeds 0, 1" in text
        assert "; MTL (all tasks) seed 1;" in text
        assert "pair click+watch_time seeds 0, 1" in text


def test_bad_specs_exit_non_zero_naming_the_problem(tiny_compare_spec: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load(tiny_compare_spec.read_text())
    raw["model"]["num_expert"] = 4
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["compare", str(spec), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 2 and "model.num_expert: unknown key; did you mean 'num_experts'?" in result.stderr
    raw = yaml.safe_load(tiny_compare_spec.read_text())
    raw["tasks"] = raw["tasks"][:1]
    raw["feedback"] = None
    raw["eval"]["gain_weights"] = {"click": 1.0}
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["compare", str(spec), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 2 and "at least two binary or regression tasks" in result.stderr
    raw = yaml.safe_load(tiny_compare_spec.read_text())
    raw["data"]["test_fraction"] = 0
    spec.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["compare", str(spec), "--split", "test", "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 2 and "--split test: the spec has no test split" in result.stderr
    assert not (tmp_path / "cmp").exists()
