"""`ranker registry canary|abort` (and what list, show and promote say about a canary): exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.registry import REPORT_JSON, Registry
from training.cli import app


@pytest.fixture
def root(tmp_path: Path, bundle_dir: Path) -> str:
    reg = Registry(tmp_path / "registry", "demo")
    reg.publish(bundle_dir)  # 1: CURRENT
    reg.publish(bundle_dir, make_current=False)  # 2
    rejected = json.dumps({"decision": "rejected", "failed": ["metric:click"]}).encode()
    reg.publish(bundle_dir, make_current=False, extra_files=lambda v: {REPORT_JSON: rejected})  # 3
    return str(tmp_path / "registry")


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_canary_then_list_show_and_abort(root: str) -> None:
    started = run("registry", "canary", "2", "--share", "0.3", "--registry", root)
    assert started.exit_code == 0, started.output
    assert "CANARY = 2 (canary: 0.3 of users; salt canary:demo:v2" in started.output and "CURRENT = 1" in started.output
    listed = run("registry", "list", "--registry", root)
    assert "CANARY = 2 (canary: 0.3 of users" in listed.output and "canary_started 2" in listed.output
    rows = [json.loads(line) for line in run("registry", "list", "--registry", root, "--json").output.splitlines()]
    assert [r["canary"] for r in rows] == [None, "canary", None]
    assert "version 2 is the running CANARY" in run("registry", "show", "2", "--registry", root).output
    aborted = run("registry", "abort", "--registry", root)
    assert aborted.exit_code == 0, aborted.output
    assert "canary of version 2 aborted; CURRENT = 1 serves every request" in aborted.output
    assert Registry(root, "demo").canary() is None
    again = run("registry", "abort", "--registry", root)
    assert again.exit_code == 2 and "no canary of 'demo' is running" in again.output


def test_promote_of_the_canary_ends_it(root: str) -> None:
    assert run("registry", "canary", "2", "--shadow", "--registry", root).exit_code == 0
    promoted = run("registry", "promote", "2", "--registry", root)
    assert promoted.exit_code == 0, promoted.output
    assert "CURRENT = 2 (the shadow of version 2 ends: promoted)" in promoted.output
    assert Registry(root, "demo").canary() is None


@pytest.mark.parametrize(("args", "message"), [
    (["9"], "version 9 of 'demo' does not exist"),
    (["1"], "version 1 is CURRENT already"),
    (["2", "--share", "0"], "share must be a number in (0, 1], not 0.0"),
    (["2", "--share", "1.01"], "share must be a number in (0, 1], not 1.01"),
    (["3"], "version 3 was rejected by the gates (['metric:click']); pass --force"),
])
def test_bad_canaries_exit_non_zero_naming_why_and_change_nothing(root: str, args: list[str], message: str) -> None:
    before = Registry(root, "demo").events()
    result = run("registry", "canary", *args, "--registry", root)
    assert result.exit_code == 2 and message in result.output.replace("\n", " "), result.output
    assert Registry(root, "demo").canary() is None and Registry(root, "demo").events() == before


def test_a_rejected_version_canaries_with_force(root: str) -> None:
    result = run("registry", "canary", "3", "--force", "--registry", root)
    assert result.exit_code == 0, result.output
    assert Registry(root, "demo").canary().version == 3
