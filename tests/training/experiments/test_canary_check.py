"""`ranker experiment canary-check` on a real registry and a joined log: a worse canary fails (exit 3) and,
asked to, is aborted; a fair one passes; too few users or no canary is not a failure; a split off the
canary's share is a mismatch; every verdict lands in the registry's CANARY_CHECK."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from service.contract.bundle import read_manifest
from service.registry import Registry
from tests.conftest import DEMO_SPEC
from tests.training.experiments.conftest import joined_table, write_partitioned
from training.cli import app

runner = CliRunner()


@pytest.fixture
def registry(tmp_path, bundle_dir) -> Registry:
    reg = Registry(tmp_path / "registry", read_manifest(bundle_dir).model_name)
    reg.publish(bundle_dir)
    reg.publish(bundle_dir, make_current=False)
    return reg


def canary_log(tmp_path, effect: float, share: float, users: int = 1500, seed: int = 4):
    """A joined log served after the canary started: model_role canary for `share` of users."""
    table = joined_table(seed=seed, users=users, effect=effect, arms=("current", "canary"), shares=(1 - share, share))
    now = np.full(table.num_rows, int(time.time() * 1000) + 1000, dtype="int64")
    table = table.set_column(table.schema.get_field_index("ts"), "ts", pa.array(now, pa.timestamp("ms", tz="UTC")))
    table = table.set_column(table.schema.get_field_index("model_role"), "model_role", table["arm"])
    return write_partitioned(table, tmp_path / f"joined-{seed}")


def check(registry: Registry, joined, tmp_path, *extra):
    return runner.invoke(app, ["experiment", "canary-check", str(joined), "--spec", str(DEMO_SPEC), "--registry",
                               str(registry.root), "--model", registry.model_name, "--out", str(tmp_path / "check"),
                               "--bootstrap", "300", *map(str, extra)])


def test_a_worse_canary_fails_the_check_and_is_aborted_when_asked(registry, tmp_path):
    registry.start_canary(2, 0.3)
    joined = canary_log(tmp_path, effect=-0.08, share=0.3)
    out = check(registry, joined, tmp_path, "--guard", "click", "--abort-if-worse")
    assert out.exit_code == 3, out.output
    assert "canary v2: worse (worse on click)" in out.stdout and "aborted" in out.stdout
    recorded = registry.canary_check()
    assert (recorded.version, recorded.verdict, recorded.worse, recorded.aborted) == (2, "worse", ["click"], True)
    assert registry.canary() is None  # CURRENT serves everyone
    assert (tmp_path / "check" / "report.md").stat().st_size > 0


def test_a_fair_canary_passes_and_keeps_running(registry, tmp_path):
    registry.start_canary(2, 0.3)
    out = check(registry, canary_log(tmp_path, effect=0.0, share=0.3), tmp_path, "--abort-if-worse")
    assert out.exit_code == 0, out.output
    assert "canary v2: ok" in out.stdout
    assert registry.canary_check().verdict == "ok" and registry.canary() is not None


def test_too_few_users_is_too_early_and_no_canary_is_nothing_to_check(registry, tmp_path):
    joined = canary_log(tmp_path, effect=-0.08, share=0.3)
    out = check(registry, joined, tmp_path)
    assert out.exit_code == 0 and "nothing to check" in out.stdout, out.output
    registry.start_canary(2, 0.3)
    out = check(registry, joined, tmp_path, "--min-users", 100_000)
    assert out.exit_code == 0 and "canary v2: too-early" in out.stdout, out.output


def test_users_split_off_the_canary_share_are_a_mismatch(registry, tmp_path):
    registry.start_canary(2, 0.05)  # the record says 5 %, the log holds 30 %
    out = check(registry, canary_log(tmp_path, effect=0.0, share=0.3), tmp_path)
    assert out.exit_code == 3 and "canary v2: mismatch" in out.stdout, out.output


def test_an_unknown_guard_is_named(registry, tmp_path):
    registry.start_canary(2, 0.3)
    out = check(registry, canary_log(tmp_path, effect=0.0, share=0.3), tmp_path, "--guard", "clicks")
    assert out.exit_code == 2 and "--guard 'clicks'" in out.stderr, out.output
