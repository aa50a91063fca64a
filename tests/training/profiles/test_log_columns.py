"""replay, `weights diff` and tune read the request-id and item-id columns the bundle was trained with
(issue 21, item 3): the manifest's `data_columns`, a flag overriding it, today's names for old bundles, and
a refusal that proposes --request-id for a bundle trained without requests.

The bundles here are the tiny bundle's model with an edited manifest (the sha256 covers model.onnx only),
read against the tiny demo log with its request column renamed `session` and a copy of its item ids `sku`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from service.contract.bundle import MANIFEST_FILE, DataColumns, read_manifest
from training.cli import app
from training.profiles.columns import bundle_columns, no_request_id_message

DEMO_WEIGHTS = Path(__file__).resolve().parents[3] / "configs" / "weights.yaml"
RENAMED = {"request_id": "session", "item_id": "sku"}
runner = CliRunner()


def run(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def session_log(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo log with no `request_id` column: `session` holds it, `sku` a copy of `item_id`."""
    table = pq.read_table(tiny_dir)
    table = table.rename_columns(["session" if n == "request_id" else n for n in table.column_names])
    path = tmp_path_factory.mktemp("session-log") / "log.parquet"
    pq.write_table(table.append_column("sku", pa.array(table.column("item_id").to_pylist())), path)
    return path


def with_columns(bundle_dir: Path, out: Path, columns: dict | None) -> Path:
    """bundle_dir's model with manifest.data_columns set to `columns` (None: left out, as in old bundles)."""
    out.mkdir()
    (out / "model.onnx").symlink_to(bundle_dir / "model.onnx")
    manifest = json.loads((bundle_dir / MANIFEST_FILE).read_text())
    manifest.pop("data_columns", None)
    if columns is not None:
        manifest["data_columns"] = columns
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))
    return out


@pytest.fixture
def changed_weights(tmp_path: Path) -> Path:
    new = tmp_path / "new.yaml"
    new.write_text(DEMO_WEIGHTS.read_text() + "  likes_only:\n    like: 1.0\n")
    return new


def test_export_records_the_specs_data_columns(bundle_dir: Path) -> None:
    assert read_manifest(bundle_dir).data_columns == DataColumns(request_id="request_id", item_id="item_id",
                                                                 timestamp="ts")


def test_diff_with_no_flags_reads_the_columns_the_manifest_names(bundle_dir, session_log, changed_weights, tmp_path):
    bundle = with_columns(bundle_dir, tmp_path / "b", RENAMED)
    out = run("weights", "diff", DEMO_WEIGHTS, changed_weights, "--bundle", bundle, "--data", session_log,
              "--json", "--resamples", "0", "--top", "2")
    assert out.exit_code == 0, out.output
    moved = json.loads(out.stdout)["profiles"][0]["most_changed"]
    sessions = set(pq.read_table(session_log, columns=["session"]).column("session").to_pylist())
    assert len(moved) == 2 and {m["request_id"] for m in moved} <= sessions
    assert all(str(i).startswith("i") for m in moved for i in m["old_top"])  # sku values, not row numbers


@pytest.mark.parametrize("command", [
    ["replay", "{bundle}", "--data", "{log}", "--weights", DEMO_WEIGHTS, "--resamples", "0", "--json"],
    ["tune", "{bundle}", "--data", "{log}", "--weights", DEMO_WEIGHTS, "--objective", "ndcg@10:click", "--objective",
     "ndcg@10:like", "--trials", "10", "--resamples", "0", "--out", "{tmp}/w.yaml", "--json"],
])
def test_replay_and_tune_with_no_flags_read_the_manifests_columns(bundle_dir, session_log, tmp_path, command):
    bundle = with_columns(bundle_dir, tmp_path / "b", RENAMED)
    args = [str(a).format(bundle=bundle, log=session_log, tmp=tmp_path) for a in command]
    out = run(*args)
    assert out.exit_code == 0, out.output


def test_a_flag_wins_over_the_manifest(bundle_dir, session_log, tmp_path):
    bundle = with_columns(bundle_dir, tmp_path / "b", {"request_id": "nope", "item_id": "nope_either"})
    base = ["replay", bundle, "--data", session_log, "--weights", DEMO_WEIGHTS, "--resamples", "0", "--json"]
    refused = run(*base)
    assert refused.exit_code == 2 and "missing column(s) ['nope', 'nope_either']" in refused.stderr, refused.output
    assert run(*base, "--request-id", "session", "--item-id", "sku").exit_code == 0
    assert run(*base, "--request-id", "session", "--item-id", "").exit_code == 0


def test_an_old_bundle_reads_todays_default_names(bundle_dir, tiny_dir, session_log, tmp_path):
    bundle = with_columns(bundle_dir, tmp_path / "b", None)
    assert read_manifest(bundle).data_columns is None
    base = ["replay", bundle, "--weights", DEMO_WEIGHTS, "--resamples", "0", "--json"]
    assert run(*base, "--data", tiny_dir).exit_code == 0  # the demo log has request_id and item_id
    out = run(*base, "--data", session_log)
    assert out.exit_code == 2, out.output
    assert "missing column(s) ['request_id']" in out.stderr
    assert "records no data columns" in out.stderr and "pass --request-id COLUMN" in out.stderr


def test_a_missing_manifest_column_is_named_with_the_flag_to_pass(bundle_dir, session_log, tmp_path):
    bundle = with_columns(bundle_dir, tmp_path / "b", {"request_id": "session", "item_id": "product"})
    out = run("replay", bundle, "--data", session_log, "--weights", DEMO_WEIGHTS, "--resamples", "0")
    assert out.exit_code == 2, out.output
    assert "missing column(s) ['product']" in out.stderr and "data.item_id of the spec" in out.stderr
    assert "pass --item-id COLUMN, or --item-id ''" in out.stderr


def test_a_bundle_trained_without_requests_is_refused_with_a_proposal(bundle_dir, tiny_dir, tmp_path):
    bundle = with_columns(bundle_dir, tmp_path / "b", {"request_id": None, "item_id": "item_id"})
    base = ["replay", bundle, "--data", tiny_dir, "--weights", DEMO_WEIGHTS, "--resamples", "0", "--json"]
    out = run(*base)  # the log has a request_id column, but the model was not trained on requests
    assert out.exit_code == 2, out.output
    assert "trained without a request id" in out.stderr and "--request-id user_id" in out.stderr
    by_user = run(*base, "--request-id", "user_id")
    assert by_user.exit_code == 0, by_user.output


def test_the_refusal_proposes_a_user_column_only_where_the_model_has_one(bundle_dir) -> None:
    manifest = read_manifest(bundle_dir)
    assert "--request-id user_id" in no_request_id_message(manifest)  # an id before user_segment
    no_users = manifest.features.model_copy(update={"categorical": [
        f.model_copy(update={"source": "context"}) if f.source == "user" else f for f in manifest.features.categorical]})
    text = no_request_id_message(manifest.model_copy(update={"features": no_users}))
    assert "user_id" not in text and "e.g. a session or user column of the data" in text


def test_diff_without_item_ids_says_items_are_row_numbers(bundle_dir, tiny_dir, changed_weights, tmp_path):
    bundle = with_columns(bundle_dir, tmp_path / "b", {"request_id": "request_id", "item_id": None})
    assert bundle_columns(read_manifest(bundle)).item_id is None
    out = run("weights", "diff", DEMO_WEIGHTS, changed_weights, "--bundle", bundle, "--data", tiny_dir,
              "--resamples", "0", "--top", "1")
    assert out.exit_code == 0 and "items are listed by row number" in out.stdout, out.output
