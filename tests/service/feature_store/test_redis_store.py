"""The Redis store against a real redis-server on 127.0.0.1: loader, MGET lookups, TTL cache,
and what an outage does (fail-open with defaults, fail-closed 503, bounded time, reconnection)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from redis_helpers import RedisServer

from service.errors import FeatureStoreUnavailable
from service.examples import example_request, ids_only
from service.feature_store.lookup import FeatureLookup
from service.feature_store.redis_loader import load_into_redis
from service.feature_store.redis_store import RedisStore, StoreUnavailable
from service.feature_store.snapshot import SnapshotError
from service.feature_store.snapshots import model_kinds
from service.live.pipeline import rank


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.kill()


@pytest.fixture
def loaded(redis_server, feature_files, manifest) -> RedisServer:
    """Redis running, flushed, with the item and user snapshots loaded."""
    if redis_server.proc is None:
        redis_server.start()
    client = redis_server.client()
    client.flushall()
    for entity, path in feature_files.items():
        load_into_redis(path, client, manifest.model_name, entity, model_kinds(manifest, entity))
    return redis_server


def test_redis_lookups_score_exactly_like_the_embedded_store(loaded, serving, lookup, metrics, manifest):
    request = orjson.dumps(ids_only(example_request(manifest, 120, seed=1, request_id="r")))
    store = RedisStore(loaded.url, manifest.model_name, timeout=1.0)
    from_redis = rank(serving, request, lookup=FeatureLookup(store, metrics))
    assert from_redis.body == rank(serving, request, lookup=lookup).body  # `lookup`: the embedded store
    summary = orjson.loads(from_redis.body)["lookup"]  # equal bodies: the same not_found counts too
    assert summary["user"] == {"not_found": 0} and "store_error" not in summary["item"]


def test_incremental_update_and_replace(loaded, manifest, feature_files, tmp_path):
    client, kinds = loaded.client(), model_kinds(manifest, "item")
    store = RedisStore(loaded.url, manifest.model_name, timeout=1.0)
    items = pq.read_table(feature_files["item"])
    first = items.column("item_id")[0].as_py()
    update = items.slice(0, 1)
    update = update.set_column(update.column_names.index("item_popularity"), "item_popularity",
                               pc.multiply(update.column("item_popularity"), 0.0))
    pq.write_table(update, tmp_path / "update.parquet")
    assert load_into_redis(tmp_path / "update.parquet", client, manifest.model_name, "item", kinds).written == 1
    assert store.lookup("item", [first], kinds).columns["item_popularity"].tolist() == [0.0]
    # A whole snapshot with --replace deletes the ids it no longer has.
    pq.write_table(items.slice(1), tmp_path / "smaller.parquet")
    report = load_into_redis(tmp_path / "smaller.parquet", client, manifest.model_name, "item", kinds, replace=True)
    assert (report.written, report.deleted) == (items.num_rows - 1, 1)
    assert store.lookup("item", [first], kinds).found.tolist() == [False]


def test_the_loader_refuses_a_bad_file_before_writing_anything(loaded, manifest, feature_files, tmp_path):
    client = loaded.client()
    client.flushall()
    pq.write_table(pq.read_table(feature_files["item"]).drop_columns(["item_age_days"]), tmp_path / "bad.parquet")
    with pytest.raises(SnapshotError, match="missing column 'item_age_days'"):
        load_into_redis(tmp_path / "bad.parquet", client, manifest.model_name, "item", model_kinds(manifest, "item"))
    assert client.dbsize() == 0


def test_the_ttl_cache_serves_recent_ids_without_redis(loaded, manifest):
    kinds = model_kinds(manifest, "item")
    store = RedisStore(loaded.url, manifest.model_name, timeout=1.0, cache_ttl=0.5)
    key = "ranker:demo:item:i0"
    before = store.lookup("item", ["i0"], kinds).columns["item_popularity"].tolist()
    loaded.client().set(key, orjson.dumps({"item_popularity": 123.0}))
    assert store.lookup("item", ["i0"], kinds).columns["item_popularity"].tolist() == before  # cached
    time.sleep(0.6)
    assert store.lookup("item", ["i0"], kinds).columns["item_popularity"].tolist() == [123.0]


def test_an_outage_fails_open_then_closed_and_the_store_reconnects(loaded, serving, metrics, manifest, feature_files):
    request = orjson.dumps(ids_only(example_request(manifest, 50, seed=2, request_id="r")))
    store = RedisStore(loaded.url, manifest.model_name, timeout=0.2, retry_interval=0.3)
    fail_open, fail_closed = FeatureLookup(store, metrics), FeatureLookup(store, metrics, fail_closed=True)
    healthy = rank(serving, request, lookup=fail_open).body
    loaded.kill()
    t0 = time.perf_counter()
    out = orjson.loads(rank(serving, request, lookup=fail_open).body)
    assert time.perf_counter() - t0 < 0.5
    assert out["lookup"]["item"] == {"not_found": 50, "store_error": True}
    assert out["items"] and all(i["score"] == i["score"] for i in out["items"])  # scored with defaults
    with pytest.raises(FeatureStoreUnavailable, match="feature store unavailable for item features"):
        rank(serving, request, lookup=fail_closed)
    assert metrics.errors.labels(entity="item")._value.get() >= 2
    loaded.start()  # empty (no persistence in the tests): the loader writes the snapshot again
    load_into_redis(feature_files["item"], loaded.client(), manifest.model_name, "item", model_kinds(manifest, "item"))
    load_into_redis(feature_files["user"], loaded.client(), manifest.model_name, "user", model_kinds(manifest, "user"))
    time.sleep(0.35)  # the retry interval
    assert rank(serving, request, lookup=fail_open).body == healthy  # reconnected by itself


def test_a_hung_redis_costs_at_most_the_timeout(loaded, manifest):
    kinds = model_kinds(manifest, "item")
    store = RedisStore(loaded.url, manifest.model_name, timeout=0.1, retry_interval=5.0)
    store.lookup("item", ["i0"], kinds)  # a pooled connection exists
    loaded.pause()
    try:
        t0 = time.perf_counter()
        with pytest.raises(StoreUnavailable, match="Timeout"):
            store.lookup("item", ["i1"], kinds)
        assert time.perf_counter() - t0 < 0.35
        t0 = time.perf_counter()
        with pytest.raises(StoreUnavailable, match="unavailable"):
            store.lookup("item", ["i2"], kinds)  # the circuit is open: no network at all
        assert time.perf_counter() - t0 < 0.01
    finally:
        loaded.resume()
