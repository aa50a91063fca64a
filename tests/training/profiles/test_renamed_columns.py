"""Train -> export -> `ranker weights diff` / `replay` with no column flags, on data whose request id column is
`session` and whose item id column is `sku` (issue 21, item 3: the tools used to ask for `request_id`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from service.contract.bundle import DataColumns, read_manifest
from tests.conftest import DEMO_SPEC
from training.bundle.export import export_bundle
from training.cli import app
from training.fit.train import train
from training.spec import load_spec

pytestmark = pytest.mark.slow
DEMO_WEIGHTS = DEMO_SPEC.parent / "weights.yaml"
RENAMES = {"request_id": "session", "item_id": "sku"}
runner = CliRunner()


@pytest.fixture(scope="module")
def renamed(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(bundle, log): the demo spec and data with its request and item columns renamed; 1 epoch."""
    work = tmp_path_factory.mktemp("renamed")
    table = pq.read_table(tiny_dir)
    pq.write_table(table.rename_columns([RENAMES.get(n, n) for n in table.column_names]), work / "log.parquet")
    text = (DEMO_SPEC.read_text().replace("request_id: request_id", "request_id: session")
            .replace("item_id: item_id", "item_id: sku").replace("{name: item_id, source: item}",
                                                                 "{name: sku, source: item}"))
    (work / "spec.yaml").write_text(text)
    shutil.copy(DEMO_WEIGHTS, work / "weights.yaml")  # the spec's eval.weights, relative to it
    spec = load_spec(work / "spec.yaml", data_path=str(work / "log.parquet"))
    spec.train.epochs, spec.train.threads = 1, 1
    return export_bundle(train(spec, progress=False), work / "bundle"), work / "log.parquet"


def test_the_manifest_records_the_renamed_columns(renamed) -> None:
    bundle, _ = renamed
    assert read_manifest(bundle).data_columns == DataColumns(request_id="session", item_id="sku", timestamp="ts")


def test_diff_and_replay_need_no_column_flags(renamed, tmp_path: Path) -> None:
    bundle, log = renamed
    new = tmp_path / "new.yaml"
    new.write_text(DEMO_WEIGHTS.read_text() + "  likes_only:\n    like: 1.0\n")
    diff = runner.invoke(app, ["weights", "diff", str(DEMO_WEIGHTS), str(new), "--bundle", str(bundle),
                               "--data", str(log), "--json", "--resamples", "0", "--top", "1"])
    assert diff.exit_code == 0, diff.output
    moved = json.loads(diff.stdout)["profiles"][0]["most_changed"][0]
    skus = set(pq.read_table(log, columns=["sku"]).column("sku").to_pylist())
    assert set(moved["old_top"]) <= skus
    replay = runner.invoke(app, ["replay", str(bundle), "--data", str(log), "--weights", str(DEMO_WEIGHTS),
                                 "--resamples", "0", "--json"])
    assert replay.exit_code == 0, replay.output
