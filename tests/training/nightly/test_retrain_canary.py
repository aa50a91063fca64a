"""`ranker retrain --canary`: a passing candidate is published beside CURRENT as a canary, not promoted."""

from __future__ import annotations

from pathlib import Path

from retrain_helpers import quick_spec, write_spec
from typer.testing import CliRunner

from service.registry import Registry
from training.cli import app
from training.nightly.retrain import EXIT_BUSY, EXIT_PROMOTED, RetrainOptions, retrain
from training.spec import RankerSpec


def test_a_passing_retrain_ends_in_a_canary_and_says_so(tmp_path: Path, quality_bundle_dir: Path,
                                                        demo_spec: RankerSpec) -> None:
    reg = Registry(tmp_path / "registry", "demo")
    reg.publish(quality_bundle_dir)
    spec = quick_spec(demo_spec, auc_tolerance=0.02, rmse_tolerance=0.1)
    out = retrain(spec, reg, RetrainOptions(work_dir=tmp_path / "work", warm_start=True, canary=0.2))
    assert out.exit_code == EXIT_PROMOTED, out.report["failed"]
    assert (out.decision, out.version, reg.current()) == ("canary", 2, 1)
    record = reg.canary()
    assert (record.version, record.share, record.mode) == (2, 0.2, "canary")
    assert reg.report(2)["decision"] == "canary" and reg.report(2)["canary"] == {"share": 0.2, "mode": "canary"}
    text = (tmp_path / "work" / "gate_report.md").read_text()
    assert "- Canary: v2 serves 0.2 of users beside CURRENT v1 (not promoted); `ranker registry promote 2`" in text
    assert reg.events()[-1]["event"] == "canary_started"

    # Another retrain while that canary runs: the registry is busy, nothing is published.
    again = retrain(spec, reg, RetrainOptions(work_dir=tmp_path / "again", warm_start=True, canary=0.2))
    assert again.exit_code == EXIT_BUSY and again.version is None, again.report
    assert reg.versions() == [1, 2] and reg.canary().version == 2
    assert "a canary of version 2 is running" in again.report["notes"][-1]


def test_the_cli_refuses_a_bad_share_before_training(tmp_path: Path, demo_spec: RankerSpec) -> None:
    spec = write_spec(quick_spec(demo_spec, epochs=1), tmp_path / "spec.yaml")
    result = CliRunner().invoke(app, ["retrain", str(spec), "--registry", str(tmp_path / "reg"), "--canary", "1.5"])
    assert result.exit_code == 2 and "--canary: the share must be a number in (0, 1], not 1.5" in result.output
    assert not (tmp_path / "reg").exists()
