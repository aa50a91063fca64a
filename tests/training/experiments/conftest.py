"""Joined logs written with pyarrow, in the contract `ranker logs join` produces (one row per served candidate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import DEMO_SPEC
from training.spec import load_spec


@pytest.fixture(scope="session")
def spec():
    return load_spec(DEMO_SPEC)


def joined_table(seed: int = 0, users: int = 300, effect: float = 0.0, arms=("control", "tuned"),
                 shares=(0.5, 0.5), candidates: int = 5, experiment: str = "exp-1", role: str = "current",
                 version: int = 3) -> pa.Table:
    """A simulated joined log: users with their own click rates, 1-4 requests each, likes only on clicks."""
    rng = np.random.default_rng(seed)
    arm_of_user = rng.choice(len(arms), size=users, p=np.asarray(shares) / sum(shares))
    rate = rng.beta(1, 6, users) + effect * (arm_of_user > 0)
    n_req = rng.integers(1, 5, users)
    req_user = np.repeat(np.arange(users), n_req)
    row_user = np.repeat(req_user, candidates)
    n = len(row_user)
    click = (rng.random(n) < np.minimum(rate[row_user], 1)).astype(float)
    like = np.where(click == 1, (rng.random(n) < 0.3).astype(float), np.nan)
    watch = np.where(click == 1, rng.exponential(30, n), np.nan)
    return pa.table({
        "request_id": pa.array([f"{seed}-r{i}" for i in np.repeat(np.arange(len(req_user)), candidates)]),
        "item_id": pa.array([f"i{i}" for i in rng.integers(0, 50, n)]),
        "ts": pa.array(np.full(n, 1_765_000_000_000, dtype="int64"), pa.timestamp("ms", tz="UTC")),
        "position": pa.array(np.tile(np.arange(1, candidates + 1), len(req_user)), pa.int32()),
        "user_key": pa.array([f"u{seed}-{u}" for u in row_user]),
        "model_name": pa.array(["demo"] * n),
        "model_version": pa.array(np.full(n, version), pa.int64()),
        "model_role": pa.array([role] * n),
        "weights_generation": pa.array(np.ones(n, dtype="int64")),
        "profile": pa.array(["default"] * n),
        "experiment": pa.array([experiment] * n),
        "arm": pa.array([arms[a] for a in arm_of_user[row_user]]),
        "score": pa.array(rng.random(n)),
        "head_click": pa.array(rng.random(n)),
        "click": pa.array(click), "watch_time": pa.array(watch), "like": pa.array(like),
        "rating": pa.array(np.full(n, np.nan)),
    })


def write_partitioned(table: pa.Table, root: Path, date: str = "2026-12-01") -> Path:
    """The table as a hive partition date=DATE/ under root (the joined log's layout)."""
    part = root / f"date={date}"
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, part / "part-0.parquet")
    return root
