"""Requests are groups of equal request_id values, wherever their rows lie (issue 9, item 1).

A user log with one row per second, users interleaved: sorted by (timestamp, request_id), no two
rows of a user are adjacent. Grouping by contiguity made every row its own "request" (and NDCG
1.0); grouping by value gives one request per user.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import ndcg_score

from training import data as D
from training.data import splits as S
from training.evaluation.metrics import ndcg_at_k, prediction_metrics
from training.spec import RankerSpec

USERS, ITEMS_PER_USER = 6, 8


def interleaved_log(n_users: int = USERS, per_user: int = ITEMS_PER_USER, seed: int = 0) -> pa.Table:
    """Row i belongs to user i % n_users at second i: a user's rows are never adjacent in time."""
    rng = np.random.default_rng(seed)
    n = n_users * per_user
    rows = np.arange(n)
    return pa.table({
        "ts": pa.array((rows * 1_000).astype("datetime64[ms]"), type=pa.timestamp("ms", tz="UTC")),
        "user_id": pa.array([f"u{i % n_users}" for i in rows]),
        "movie_id": pa.array([f"m{i}" for i in rows]),
        "score_hint": pa.array(rng.normal(size=n)),
        "watch": pa.array(rng.integers(0, 2, size=n).astype(np.int8)),
    })


def user_spec(path: Path, **data: object) -> RankerSpec:
    return RankerSpec.model_validate({
        "name": "users",
        "data": {"path": str(path), "timestamp": "ts", "request_id": "user_id", "item_id": "movie_id", **data},
        "features": {"categorical": [{"name": "user_id", "source": "user"}, {"name": "movie_id", "source": "item"}],
                     "numeric": [{"name": "score_hint", "source": "item"}]},
        "tasks": [{"name": "watch", "type": "binary", "group": "engagement"}],
        "model": {"ranking_head": False},  # the tests score one head
    })


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    path = tmp_path / "log.parquet"
    pq.write_table(interleaved_log(), path)
    return path


def test_request_index_groups_rows_by_value_not_by_contiguity(log_path: Path) -> None:
    spec = user_spec(log_path)
    table = S.sort_by_time(D.load_table(spec), spec.data)
    index = D.request_index(table, spec)
    users = np.asarray(table.column("user_id").to_pylist())
    assert len(np.unique(index)) == USERS  # contiguity gave USERS * ITEMS_PER_USER "requests"
    for u in np.unique(users):
        assert len(set(index[users == u].tolist())) == 1


def test_ndcg_equals_per_user_ndcg_computed_by_scikit_learn(log_path: Path) -> None:
    spec = user_spec(log_path)
    table = S.sort_by_time(D.load_table(spec), spec.data)
    scores = table.column("score_hint").to_numpy()
    gains = table.column("watch").to_numpy().astype(float)
    got = prediction_metrics(scores[:, None], gains[:, None], D.request_index(table, spec), spec)["ndcg@10"]
    users = np.asarray(table.column("user_id").to_pylist())
    per_user = [ndcg_score([gains[users == u]], [scores[users == u]], k=10)
                for u in np.unique(users) if gains[users == u].any()]
    assert got == pytest.approx(float(np.mean(per_user)))


def test_one_row_requests_have_no_ndcg() -> None:
    """A one-row request ranks nothing: its NDCG is always 1.0, so it must not count."""
    gains = np.array([1.0, 0.0, 1.0, 1.0])
    assert ndcg_at_k(np.arange(4), np.array([0.1, 0.9, 0.3, 0.2]), gains, 10) is None
    # Mixed: only the two-row request (rows 2, 3) counts, and it is ranked worst-first.
    mixed = ndcg_at_k(np.array([0, 1, 2, 2]), np.array([0.1, 0.9, 0.0, 1.0]), np.array([1.0, 1.0, 1.0, 0.0]), 10)
    assert mixed == pytest.approx(1 / np.log2(3))


def test_metrics_report_request_count_sizes_and_warn_on_degenerate_groups(log_path: Path) -> None:
    spec = user_spec(log_path)
    table = S.sort_by_time(D.load_table(spec), spec.data)
    n = table.num_rows
    preds, labels = np.zeros((n, 1)), table.column("watch").to_numpy().astype(float)[:, None]
    good = prediction_metrics(preds, labels, D.request_index(table, spec), spec)
    assert good["requests"]["count"] == USERS
    assert good["requests"]["size"]["median"] == ITEMS_PER_USER
    assert good["requests"]["size"]["max"] == ITEMS_PER_USER
    assert not [w for w in good["warnings"] if "request" in w]  # (48 labels: the AUC warning is expected)
    singles = prediction_metrics(preds, labels, np.arange(n), spec)
    assert singles["ndcg@10"] is None
    assert singles["requests"]["size"]["median"] == 1
    assert any("median request size is 1" in w for w in singles["warnings"])


def test_time_split_warns_when_requests_span_the_cut(log_path: Path) -> None:
    """request_id: user_id with a time split: every user has rows on both sides of the cut."""
    spec = user_spec(log_path)
    splits = S.load_splits(spec)
    assert any("span" in w and "user_id" in w for w in splits.warnings), splits.warnings
