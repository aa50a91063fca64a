"""Which split each streamed row belongs to: 0 train, 1 valid, 2 test.

    Fixed       every row of a pre-split file (data.train / valid / test)
    ByColumn    data.split_column's value (train / valid / test; anything else is an error)
    ByTime      the exact cuts of training/streaming/timecut.py: the same rows as the in-memory split
    ByHash      data.split: random, streamed: a whole request (or a row, without a request_id) goes to
                test when a seeded 64-bit hash of its id falls below test_fraction, to valid below
                test_fraction + valid_fraction. The fractions hold in expectation, not to the row, and
                the rows differ from the in-memory split's seeded permutation (which needs every request
                id in memory); docs/ARCHITECTURE.md records this departure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.data.splits import column_split_codes
from training.streaming.timecut import Cut, rid_array, ts_int

TRAIN, VALID, TEST = 0, 1, 2


@dataclass(frozen=True)
class Fixed:
    split: int

    def __call__(self, table: pa.Table, pos: np.ndarray) -> np.ndarray:
        return np.full(table.num_rows, self.split, dtype=np.int8)

    def columns(self) -> list[str]:
        return []


@dataclass(frozen=True)
class ByColumn:
    column: str

    def __call__(self, table: pa.Table, pos: np.ndarray) -> np.ndarray:
        return column_split_codes(table.column(self.column), self.column)

    def columns(self) -> list[str]:
        return [self.column]


@dataclass(frozen=True)
class ByTime:
    ts: str
    rid: str | None
    valid_cut: Cut | None  # rows before it train (None: no rows at all)
    test_cut: Cut | None  # rows at or after it test (None: no test split)

    def __call__(self, table: pa.Table, pos: np.ndarray) -> np.ndarray:
        ts, rid = ts_int(table, self.ts), rid_array(table, self.rid)
        out = np.full(table.num_rows, VALID, dtype=np.int8)
        if self.valid_cut is not None:
            out[self.valid_cut.before(ts, rid, pos)] = TRAIN
        if self.test_cut is not None:
            out[~self.test_cut.before(ts, rid, pos)] = TEST
        return out

    def columns(self) -> list[str]:
        return [self.ts] + ([self.rid] if self.rid else [])


@dataclass(frozen=True)
class ByHash:
    rid: str | None
    seed: int
    valid_fraction: float
    test_fraction: float

    def __call__(self, table: pa.Table, pos: np.ndarray) -> np.ndarray:
        h = _hash_ids(rid_array(table, self.rid)) if self.rid else _mix(pos.astype(np.uint64))
        u = (_mix(h ^ _mix(np.uint64(self.seed & (2**64 - 1)))) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        out = np.full(table.num_rows, TRAIN, dtype=np.int8)
        out[u < self.test_fraction + self.valid_fraction] = VALID
        out[u < self.test_fraction] = TEST
        return out

    def columns(self) -> list[str]:
        return [self.rid] if self.rid else []


def _mix(x: np.ndarray | np.uint64) -> np.ndarray:
    """splitmix64's finalizer: a bijective scramble of 64-bit values (uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _hash_ids(ids: pa.Array) -> np.ndarray:
    """(N,) uint64 per id value: integers as they are, anything else by an 8-byte BLAKE2b of its text."""
    if pa.types.is_integer(ids.type):
        return ids.cast(pa.int64()).to_numpy(zero_copy_only=False).view(np.uint64)
    encoded = pc.dictionary_encode(ids.cast(pa.string()))
    distinct = np.array([int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little")
                         for v in encoded.dictionary.to_pylist()], dtype=np.uint64)
    return distinct[encoded.indices.to_numpy(zero_copy_only=False)]


