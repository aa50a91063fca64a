"""`ranker registry list|show|promote|rollback` on a registry with gated and ungated versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.registry import REPORT_JSON, REPORT_MD, Registry
from training.cli import app
from training.nightly.gate_report import render_gate_report
from training.nightly.gates import check


def report(version: int, decision: str, compared_with: int | None, failing: bool) -> dict:
    gates = [check("parity", "model", 0.01, "<=", 1.0),
             check("metric", "click", 0.52 if failing else 0.71, ">=", 0.69)]
    return {"format": 1, "model_name": "demo", "decision": decision, "version": version, "current_before": 1,
            "compared_with": compared_with, "notes": [], "started_at": "2026-11-15T02:00:00+00:00",
            "finished_at": "2026-11-15T02:05:00+00:00", "seconds": 300.0,
            "window": {"start": "2026-11-01", "end": "2026-11-15", "partitions": [], "data": "/data"},
            "rows": {"train": 8, "valid": 1, "test": 1},
            "holdout": {"rows": 1, "start": "2026-11-14T00:00:00", "end": "2026-11-14T23:59:00"},
            "warm_start": None, "gates": [g.to_dict() for g in gates],
            "failed": [f"{g.gate}:{g.subject}" for g in gates if not g.passed], "candidate_test_metrics": {}}


def files(rep: dict):
    return lambda v: {REPORT_JSON: json.dumps({**rep, "version": v}).encode(),
                      REPORT_MD: render_gate_report({**rep, "version": v}).encode()}


@pytest.fixture
def root(tmp_path: Path, bundle_dir: Path) -> str:
    reg = Registry(tmp_path / "registry", "demo")
    reg.publish(bundle_dir)  # 1: ranker train, no gates
    reg.publish(bundle_dir, extra_files=files(report(2, "promoted", 1, failing=False)))  # 2
    reg.publish(bundle_dir, make_current=False, extra_files=files(report(3, "rejected", 2, failing=True)))  # 3
    return str(tmp_path / "registry")


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def test_list_shows_current_and_why(root: str) -> None:
    result = run("registry", "list", "--registry", root)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("CURRENT = 2")
    row = {int(line.split()[1] if line.startswith("*") else line.split()[0]): line
           for line in lines[2:] if line.strip() and line.strip()[0] in "*0123456789"}
    assert row[2].startswith("*") and "all 2 gates passed vs v1" in row[2]
    assert "rejected" in row[3] and "metric:click 0.52 >= 0.69 (by -0.17)" in row[3]
    assert "published without gates" in row[1]


def test_list_as_json_and_from_the_environment(root: str) -> None:
    result = run("registry", "list", "--json", env={"RANKER_REGISTRY_ROOT": root, "RANKER_MODEL_NAME": "demo"})
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["version"], r["current"], r["decision"]) for r in rows] == [
        (1, False, "published"), (2, True, "promoted"), (3, False, "rejected")]


def test_show_prints_the_gate_report(root: str) -> None:
    result = run("registry", "show", "3", "--registry", root)
    assert result.exit_code == 0
    assert "REJECTED" in result.output and "| metric | click | 0.52 | >= 0.69 | **FAIL** |" in result.output


def test_promote_refuses_a_rejected_version_unless_forced(root: str) -> None:
    refused = run("registry", "promote", "3", "--registry", root)
    assert refused.exit_code == 2 and "rejected by the gates" in refused.output
    assert Registry(root, "demo").current() == 2
    forced = run("registry", "promote", "3", "--force", "--registry", root)
    assert forced.exit_code == 0 and "CURRENT = 3" in forced.output
    assert "forced" in Registry(root, "demo").history()[-1]["reason"]


def test_rollback_and_missing_version(root: str) -> None:
    result = run("registry", "rollback", "--registry", root)
    assert result.exit_code == 0 and "CURRENT = 1 (was 2)" in result.output
    again = run("registry", "rollback", "--registry", root)
    assert again.exit_code == 2 and "no earlier served version" in again.output
    missing = run("registry", "promote", "42", "--registry", root)
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_retrain_with_weights_a_server_would_refuse_stops_before_training(root: str, tiny_dir: Path,
                                                                          tmp_path: Path) -> None:
    bad = tmp_path / "weights.yaml"
    bad.write_text("profiles: {default: {click: 1.0, likes: 2.0}}")
    spec = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"
    out = CliRunner().invoke(app, ["retrain", str(spec), "--registry", root, "--data", str(tiny_dir),
                                   "--weights", str(bad), "--work-dir", str(tmp_path / "work")])
    assert out.exit_code == 2 and "profiles.default.likes" in out.stderr, out.output
    assert Registry(root, "demo").versions() == [1, 2, 3]  # nothing trained, nothing published
