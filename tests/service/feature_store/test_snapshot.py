"""Snapshots in memory and their validation: vectorized lookups, errors that name the column."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.feature_store.snapshot import Snapshot, SnapshotError
from service.feature_store.snapshots import model_kinds, publish_snapshot, read_validated, snapshot_registry

KINDS = {"item_category": "categorical", "item_popularity": "numeric"}


def table(**overrides) -> pa.Table:
    cols = {"item_id": ["b", "a", "c"], "item_category": ["x", None, "z"], "item_popularity": [2.0, 1.0, None]}
    return pa.table({**cols, **overrides})


def test_lookup_finds_rows_by_id_in_any_order_and_marks_missing():
    snap = Snapshot.from_table(table(), "item")
    found = snap.lookup(["c", "nope", "a", "b"], KINDS)
    assert found.found.tolist() == [True, False, True, True] and found.not_found == 1
    assert found.columns["item_category"] == ["z", None, None, "x"]  # a null value stays missing
    pop = found.columns["item_popularity"]
    assert np.isnan(pop[0]) and np.isnan(pop[1]) and pop[2:].tolist() == [1.0, 2.0]


def test_integer_ids_and_categorical_integers_use_the_canonical_strings():
    snap = Snapshot.from_table(pa.table({"item_id": [10, 7], "brand": [3, 4]}), "item")
    found = snap.lookup([7, "10", 11], {"brand": "categorical"})
    assert found.found.tolist() == [True, True, False]
    assert found.columns["brand"] == ["4", "3", None]


def test_a_large_lookup_is_one_vectorized_search(tmp_path):
    n = 200_000
    ids = np.char.add("i", np.arange(n).astype(str))
    snap = Snapshot.from_table(pa.table({"item_id": ids[::-1].copy(), "item_popularity": np.arange(n, dtype=float)[::-1].copy()}), "item")
    query = ids[np.random.default_rng(0).integers(0, n, 500)].tolist()
    found = snap.lookup(query, {"item_popularity": "numeric"})
    assert found.found.all()
    assert found.columns["item_popularity"].tolist() == [float(q[1:]) for q in query]


@pytest.mark.parametrize(("data", "message"), [
    (table(item_id=["a", "b", "a"]), "column 'item_id': id 'a' appears more than once"),
    (table(item_id=["a", None, "c"]), "column 'item_id' has 1 null ids"),
    (table(item_popularity=[1.0, float("inf"), 2.0]), "column 'item_popularity' has infinite values"),
    (pa.table({"id": ["a"], "item_popularity": [1.0]}), "no 'item_id' column"),
])
def test_bad_snapshots_are_refused_naming_the_column(data, message):
    with pytest.raises(SnapshotError, match=message):
        Snapshot.from_table(data, "item")


@pytest.mark.parametrize(("data", "message"), [
    (table().drop_columns(["item_popularity"]), "missing column 'item_popularity' \\(a numeric item feature"),
    (table(item_popularity=["1", "2", "3"]), "column 'item_popularity': a numeric feature must be numeric"),
    (table(item_category=[1.5, 2.5, 3.5]), "column 'item_category': a categorical feature must be string"),
])
def test_a_snapshot_that_does_not_fit_the_model_is_refused_naming_the_column(tmp_path, data, message):
    path = tmp_path / "items.parquet"
    pq.write_table(data, path)
    with pytest.raises(SnapshotError, match=message):
        read_validated(path, "item", KINDS)


def test_publish_validates_against_the_model_and_gets_its_own_current(registry, manifest, feature_files, tmp_path):
    reg = snapshot_registry(registry.root, manifest.model_name, "item")
    assert publish_snapshot(feature_files["item"], reg, "item", manifest) == 1
    assert reg.current() == 1 and registry.current() == 1  # the model's CURRENT is its own
    bad = tmp_path / "bad.parquet"
    pq.write_table(pq.read_table(feature_files["item"]).drop_columns(["title_caps_ratio"]), bad)
    with pytest.raises(SnapshotError, match="missing column 'title_caps_ratio'"):
        publish_snapshot(bad, reg, "item", manifest)
    assert reg.versions() == [1] and reg.current() == 1
    assert model_kinds(manifest, "user") == {"user_segment": "categorical", "user_activity": "numeric"}


def test_the_id_index_survives_hash_collisions(monkeypatch):
    from service.feature_store import id_index

    monkeypatch.setattr(id_index, "hash", lambda s: 7, raising=False)  # every id collides
    index = id_index.IdIndex(pa.array(["x", "y", "z"]))
    rows, found = index.find(["z", "nope", "x", "y"])
    assert found.tolist() == [True, False, True, True] and rows.tolist() == [2, 0, 0, 1]


def test_the_id_index_finds_every_id_among_many():
    from service.feature_store.id_index import IdIndex

    ids = [f"id-{i}" for i in range(50_000)]
    index = IdIndex(pa.array(ids))
    query = [ids[i] for i in np.random.default_rng(0).integers(0, len(ids), 1000)] + ["id--1"]
    rows, found = index.find(query)
    assert found[:-1].all() and not found[-1]
    assert [ids[r] for r in rows[:-1]] == query[:-1]
