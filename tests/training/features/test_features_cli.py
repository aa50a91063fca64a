"""`ranker features publish|load-redis`: validated against the model, errors name the column (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from service.feature_store.snapshots import snapshot_registry
from service.registry import Registry
from training.cli import app
from training.spec import LookupConfig, LookupEntity, RankerSpec

runner = CliRunner()


@pytest.fixture
def registry(tmp_path: Path, bundle_dir: Path) -> Registry:
    reg = Registry(tmp_path / "registry", "demo")
    reg.publish(bundle_dir)
    return reg


def test_publish_validates_against_current_and_moves_the_snapshot_current(registry, feature_files, tmp_path):
    args = ["features", "publish", str(feature_files["item"]), "--registry", str(registry.root), "--entity", "item"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "published item snapshot version 1 of demo" in result.output
    assert snapshot_registry(registry.root, "demo", "item").current() == 1
    bad = tmp_path / "bad.parquet"
    t = pq.read_table(feature_files["item"])
    pq.write_table(t.set_column(t.column_names.index("item_age_days"), "item_age_days",
                                t.column("item_age_days").cast(pa.string())), bad)
    result = runner.invoke(app, [*args[:2], str(bad), *args[3:]])
    assert result.exit_code == 2
    assert "column 'item_age_days': a numeric feature must be numeric or boolean, not string" in result.output
    assert snapshot_registry(registry.root, "demo", "item").versions() == [1]


def test_publish_without_a_model_to_validate_against_exits_2(tmp_path, feature_files):
    result = runner.invoke(app, ["features", "publish", str(feature_files["user"]), "--registry",
                                 str(tmp_path / "empty"), "--entity", "user"])
    assert result.exit_code == 2 and "no CURRENT model" in result.output


def test_load_redis_writes_the_snapshot(tmp_path, feature_files, bundle_dir):
    from redis_helpers import RedisServer

    server = RedisServer(tmp_path).start()
    try:
        result = runner.invoke(app, ["features", "load-redis", str(feature_files["user"]), "--entity", "user",
                                     "--redis-url", server.url, "--bundle", str(bundle_dir)])
        assert result.exit_code == 0, result.output
        rows = pq.read_metadata(feature_files["user"]).num_rows
        assert f"wrote {rows:,} user ids" in result.output and server.client().dbsize() == rows
    finally:
        server.kill()


def test_spec_lookup_features_must_be_features_of_that_source(tiny_spec):
    raw = tiny_spec.model_dump()
    raw["lookup"] = LookupConfig(item=LookupEntity(features=["user_activity"])).model_dump()
    with pytest.raises(ValueError, match="lookup.item.features: 'user_activity' is not a feature with source item"):
        RankerSpec.model_validate(raw)
    raw["lookup"] = {"item": {"features": ["item_id"]}}
    with pytest.raises(ValueError, match="'item_id' is the lookup key"):
        RankerSpec.model_validate(raw)
