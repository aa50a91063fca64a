"""The embedded store follows the snapshots' CURRENT: swaps new versions, refuses bad ones."""

from __future__ import annotations

import shutil

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from service.examples import example_request, ids_only
from service.feature_store.snapshots import SNAPSHOT_FILE, publish_snapshot, snapshot_registry
from service.live.pipeline import rank


def popularity_times(path, factor: float, out):
    t = pq.read_table(path)
    t = t.set_column(t.column_names.index("item_popularity"), "item_popularity",
                     pc.multiply(t.column("item_popularity"), factor))
    pq.write_table(t, out)
    return out


def test_a_new_snapshot_is_swapped_in_and_a_bad_one_refused_while_the_old_serves(
        embedded, lookup, serving, manifest, feature_files, published, tmp_path, metrics):
    reg = snapshot_registry(published.root, manifest.model_name, "item")
    request = orjson.dumps(ids_only(example_request(manifest, 30, seed=1, request_id="r")))
    before = rank(serving, request, lookup=lookup).body
    publish_snapshot(popularity_times(feature_files["item"], 100.0, tmp_path / "v2.parquet"), reg, "item", manifest)
    assert embedded.check()["item"] == "success" and embedded.snapshots["item"].version == 2
    after = rank(serving, request, lookup=lookup).body
    assert after != before

    # v3 passes publish-time validation, then is damaged on disk: the server refuses it, v2 serves.
    publish_snapshot(feature_files["item"], reg, "item", manifest)
    damaged = reg.bundle_dir(3) / SNAPSHOT_FILE
    pq.write_table(pq.read_table(damaged).drop_columns(["item_category"]), damaged)
    assert embedded.check()["item"] == "refused"
    assert embedded.snapshots["item"].version == 2 and "sha256" in embedded.refused["item"][3]
    assert rank(serving, request, lookup=lookup).body == after
    assert embedded.check()["item"] == "skipped"  # not retried by polling
    assert metrics.snapshot_loads.labels(entity="item", result="refused")._value.get() == 1


def test_a_snapshot_with_the_wrong_schema_is_refused_at_load(embedded, manifest, published, tmp_path):
    # Published by hand, past `ranker features publish`: item_popularity as strings.
    reg = snapshot_registry(published.root, manifest.model_name, "item")
    bad = tmp_path / "bad.parquet"
    t = pq.read_table(reg.bundle_dir(1) / SNAPSHOT_FILE)
    t = t.set_column(t.column_names.index("item_popularity"), "item_popularity",
                     t.column("item_popularity").cast(pa.string()))
    pq.write_table(t, bad)

    def stage(staging, version):
        shutil.copyfile(bad, staging / SNAPSHOT_FILE)
        info = orjson.loads((reg.bundle_dir(1) / "snapshot.json").read_bytes())
        from service.contract.files import sha256_file
        (staging / "snapshot.json").write_bytes(orjson.dumps({**info, "sha256": sha256_file(bad)}))

    reg.publish_staged(stage)
    assert embedded.check()["item"] == "refused"
    assert "column 'item_popularity': a numeric feature must be numeric" in embedded.refused["item"][2]
    assert embedded.snapshots["item"].version == 1


def test_a_model_the_active_snapshot_cannot_serve_is_refused(embedded, manifest, feature_files):
    from service.feature_store.snapshot import Snapshot

    assert embedded.fits(manifest) is None
    # A snapshot published for an older model that did not look up title_caps_ratio yet.
    old = Snapshot.from_table(pq.read_table(feature_files["item"]).drop_columns(["title_caps_ratio"]), "item", 9)
    embedded.snapshots = {**embedded.snapshots, "item": old}
    assert "item feature snapshot cannot serve it" in embedded.fits(manifest)
    assert "missing column 'title_caps_ratio'" in embedded.fits(manifest)


@pytest.mark.slow
def test_the_app_refuses_a_model_its_snapshot_cannot_serve_until_a_fitting_snapshot_arrives(
        make_settings, registry, manifest, feature_files, tmp_path):
    from fastapi.testclient import TestClient
    from server_helpers import wait_until

    from service.app import create_app

    # A snapshot made for a model that did not look up title_caps_ratio (validated against that one).
    older = manifest.model_copy(update={"lookups": {"item": ["item_category", "item_popularity", "item_age_days"]}})
    pq.write_table(pq.read_table(feature_files["item"]).drop_columns(["title_caps_ratio"]), tmp_path / "old.parquet")
    items = snapshot_registry(registry.root, manifest.model_name, "item")
    publish_snapshot(tmp_path / "old.parquet", items, "item", older)
    with TestClient(create_app(make_settings(feature_poll_interval=0.1))) as client:
        models = lambda: client.get("/v1/models").json()  # noqa: E731
        assert wait_until(lambda: "1" in models()["refused_versions"])
        assert "missing column 'title_caps_ratio'" in models()["refused_versions"]["1"]
        assert client.get("/v2/health/ready").status_code == 503
        publish_snapshot(feature_files["item"], items, "item", manifest)
        assert wait_until(lambda: client.get("/v2/health/ready").status_code == 200, timeout=10)
        assert models()["model"]["version"] == 1 and models()["feature_store"]["item"]["version"] == 2
