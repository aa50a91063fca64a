"""Training on id-only logs: feature tables joined by id, point in time for a history (no leaks)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.data import DataError, load_table
from training.features.join import join_lookup_tables
from training.spec import LookupConfig, LookupEntity


def t(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


def with_lookup(spec, **entities):
    spec = spec.model_copy(deep=True)
    spec.lookup = LookupConfig(**entities)
    return spec


@pytest.fixture
def logs() -> pa.Table:
    """Impressions of items a and b, unordered in time; item_popularity is not logged."""
    return pa.table({"item_id": ["a", "a", "b", "a", "c"],
                     "ts": pa.array([t(2), t(5), t(3), t(4), t(3)], pa.timestamp("ms", tz="UTC"))})


def test_point_in_time_join_never_uses_a_later_value(tiny_spec, logs, tmp_path):
    history = pa.table({"item_id": ["a", "a", "a", "b"],
                        "valid_from": pa.array([t(1), t(4), t(6), t(3, 12)], pa.timestamp("us", tz="UTC")),
                        "item_popularity": [1.0, 4.0, 6.0, 3.5]})
    pq.write_table(history, tmp_path / "history.parquet")
    spec = with_lookup(tiny_spec, item=LookupEntity(features=["item_popularity"], table=str(tmp_path / "history.parquet"),
                                                    timestamp="valid_from"))
    out = join_lookup_tables(logs, spec)
    # a@2 -> the value from day 1 (day 4's and day 6's are later); a@5 -> day 4's; a@4 -> day 4's (same time);
    # b@3 00:00 -> none (b's first value is from 12:00 that day: later, so not used); c -> none.
    assert out.column("item_popularity").to_pylist() == [1.0, 4.0, None, 4.0, None]
    assert out.column("item_id").to_pylist() == logs.column("item_id").to_pylist()  # row order kept


def test_a_snapshot_table_joins_by_id_and_logged_values_win(tiny_spec, logs, tmp_path):
    pq.write_table(pa.table({"item_id": ["a", "b"], "item_popularity": [1.0, 2.0]}), tmp_path / "items.parquet")
    spec = with_lookup(tiny_spec, item=LookupEntity(features=["item_popularity"], table=str(tmp_path / "items.parquet")))
    assert join_lookup_tables(logs, spec).column("item_popularity").to_pylist() == [1.0, 1.0, 2.0, 1.0, None]
    logged = logs.append_column("item_popularity", pa.array([9.0, None, None, None, None]))
    assert join_lookup_tables(logged, spec).column("item_popularity").to_pylist() == [9.0, 1.0, 2.0, 1.0, None]


def test_repeated_ids_in_a_snapshot_table_are_an_error_naming_the_column(tiny_spec, logs, tmp_path):
    pq.write_table(pa.table({"item_id": ["a", "a"], "item_popularity": [1.0, 2.0]}), tmp_path / "items.parquet")
    spec = with_lookup(tiny_spec, item=LookupEntity(features=["item_popularity"], table=str(tmp_path / "items.parquet")))
    with pytest.raises(ValueError, match="repeated item_id in column 'item_id'"):
        join_lookup_tables(logs, spec)


def test_train_on_id_only_logs_matches_training_on_logs_with_features(tiny_spec, tiny_dir, tmp_path):
    """`ranker train`'s data path: logs without item features + the catalogue = the full logs."""
    from training.data.demo import ITEM_FEATURES, feature_snapshots

    full = load_table(tiny_spec)
    ids_only = full.drop_columns(list(ITEM_FEATURES))
    pq.write_table(ids_only, tmp_path / "logs.parquet")
    pq.write_table(feature_snapshots(full)["item"], tmp_path / "items.parquet")
    spec = with_lookup(tiny_spec, item=LookupEntity(features=list(ITEM_FEATURES), table=str(tmp_path / "items.parquet")))
    spec.data.path = str(tmp_path / "logs.parquet")
    joined = load_table(spec)
    for name in ITEM_FEATURES:
        assert joined.column(name).to_pylist() == full.column(name).to_pylist(), name
    pq.write_table(ids_only, tmp_path / "logs.parquet")
    spec.lookup = LookupConfig()
    with pytest.raises(DataError, match="missing column"):
        load_table(spec)
