"""The time split of a stream, exactly where the in-memory split cuts.

In memory (training/data/splits.py, split_by_time) the rows are sorted by (timestamp, request_id),
stably, and cut at the first run start of equal request ids at or after row int(n * fraction). So a
split is a lexicographic threshold on the key (ts, request_id, pos), pos being the row's place in
the dataset's order (the stable sort's tie-break). A stream finds the key at the cut in three
reads of the timestamp (and request id) column only:

    A  count the rows in the window and their time range (and rows per piece, for `pos`)
    B  a histogram of the timestamps over 2^20 equal bins
    C  the keys of the rows in the bin(s) around the cut, sorted; the first run start at or after
       the cut's row is the threshold (a run longer than the window widens it and reads again)

Memory: the rows of the bins read in C (n / 2^20 on average; all rows that share one timestamp bin
in the worst case).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.streaming.source import Source

BINS = 1 << 20


@dataclass(frozen=True)
class Cut:
    """A split threshold: rows whose (ts, request_id, pos) is below it are before the cut."""

    ts: int
    rid: object | None
    pos: int

    def before(self, ts: np.ndarray, rid: pa.Array | None, pos: np.ndarray) -> np.ndarray:
        """(N,) bool: key < this cut (lexicographically)."""
        lt, eq = ts < self.ts, ts == self.ts
        if not eq.any():
            return lt
        tie = pos < self.pos
        if rid is not None:
            value = pa.scalar(self.rid, type=rid.type)
            r_lt = pc.less(rid, value).to_numpy(zero_copy_only=False)
            r_eq = pc.equal(rid, value).to_numpy(zero_copy_only=False)
            tie = r_lt | (r_eq & tie)
        return lt | (eq & tie)


def ts_int(table: pa.Table, column: str) -> np.ndarray:
    """(N,) the timestamp column as int64 (its own unit)."""
    return table.column(column).cast(pa.int64()).to_numpy(zero_copy_only=False)


def rid_array(table: pa.Table, column: str | None) -> pa.Array | None:
    if column is None:
        return None
    col = table.column(column).combine_chunks()
    return col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col


@dataclass
class Keys:
    """The (ts, request_id, pos) keys of one source, read piece by piece."""

    source: Source
    ts: str
    rid: str | None
    bases: list[int] | None = None  # pos of each piece's first row (after pass A)

    def read(self, with_rid: bool) -> Iterator[tuple[int, np.ndarray, pa.Array | None, np.ndarray]]:
        """(piece index, ts, rid, pos) per batch."""
        cols = [self.ts] + ([self.rid] if with_rid and self.rid else [])
        for i, piece in enumerate(self.source.pieces):
            base = self.bases[i] if self.bases is not None else 0
            for table in self.source.batches(piece, cols):
                n = table.num_rows
                yield i, ts_int(table, self.ts), rid_array(table, self.rid) if with_rid else None, \
                    np.arange(base, base + n)
                base += n


def count_rows(keys: Keys) -> tuple[int, int, int, list[int]]:
    """Pass A: (rows, min ts, max ts, rows of each piece) inside the window."""
    per_piece = [0] * len(keys.source.pieces)
    lo, hi = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    for i, ts, _, _ in keys.read(with_rid=False):
        per_piece[i] += len(ts)
        if len(ts):
            lo, hi = min(lo, int(ts.min())), max(hi, int(ts.max()))
    keys.bases = [int(b) for b in np.concatenate([[0], np.cumsum(per_piece)[:-1]])]
    return sum(per_piece), lo, hi, per_piece


def time_cuts(keys: Keys, fractions: list[float]) -> tuple[list[Cut | None], int, list[int]]:
    """The cuts at each fraction (None for a fraction >= 1: nothing after it), the rows, the rows per piece."""
    n, lo, hi, per_piece = count_rows(keys)
    if n == 0:
        return [None] * len(fractions), 0, per_piece

    def bins(ts: np.ndarray) -> np.ndarray:  # monotone in ts, so bins keep the sort order
        return np.minimum(((ts - lo) / (hi - lo + 1) * BINS).astype(np.int64), BINS - 1)

    hist = np.zeros(BINS, dtype=np.int64)
    for _, ts, _, _ in keys.read(with_rid=False):  # pass B
        hist += np.bincount(bins(ts), minlength=BINS)
    cuts = [None if f >= 1 else _find_cut(keys, hist, bins, int(n * f), n) for f in fractions]
    return cuts, n, per_piece


def _find_cut(keys: Keys, hist: np.ndarray, bins, k: int, n: int) -> Cut:
    """Pass C: the key of the first run start at or after sorted row k (the last run start if none)."""
    ends = np.cumsum(hist)
    nonempty = np.flatnonzero(hist)
    lo = int(np.searchsorted(ends, max(k - 1, 0), side="right"))
    hi = int(np.searchsorted(ends, min(k, n - 1), side="right"))
    while True:
        window = _window(keys, bins, lo, hi)  # sorted keys of the rows in bins [lo, hi]
        first = int(ends[lo] - hist[lo])  # sorted index of the window's first row
        starts = _starts(window, first)
        after = starts[starts >= k]
        if len(after):
            return _cut_at(window, int(after[0]) - first)
        if hi == nonempty[-1]:
            before = starts[starts < k]
            if len(before):  # as in memory: no run starts at or after row k, so cut at the last start
                return _cut_at(window, int(before[-1]) - first)
            lo = int(nonempty[np.searchsorted(nonempty, lo) - 1])
        else:
            hi = int(nonempty[np.searchsorted(nonempty, hi, side="right")])


def _window(keys: Keys, bins, lo: int, hi: int) -> pa.Table:
    parts = []
    for _, ts, rid, pos in keys.read(with_rid=True):
        b = bins(ts)
        keep = (b >= lo) & (b <= hi)
        if keep.any():
            cols = {"ts": ts[keep], "pos": pos[keep]}
            if rid is not None:
                cols["rid"] = rid.filter(pa.array(keep))
            parts.append(pa.table(cols))
    table = pa.concat_tables(parts)
    order = [("ts", "ascending")] + ([("rid", "ascending")] if "rid" in table.column_names else [])
    return table.sort_by([*order, ("pos", "ascending")])


def _starts(window: pa.Table, first: int) -> np.ndarray:
    """Sorted indices (global) of the window's rows that start a run of equal request ids; the window's
    first row counts only when it is the first row of all (its predecessor is not in the window)."""
    idx = np.arange(window.num_rows)
    if "rid" not in window.column_names:
        start = np.ones(window.num_rows, dtype=bool)
    else:
        rid = window.column("rid").combine_chunks()
        start = np.r_[False, pc.not_equal(rid[1:], rid[:-1]).to_numpy(zero_copy_only=False)]
    start[0] = first == 0
    return idx[start] + first


def _cut_at(window: pa.Table, i: int) -> Cut:
    rid = window.column("rid")[i].as_py() if "rid" in window.column_names else None
    return Cut(int(window.column("ts")[i].as_py()), rid, int(window.column("pos")[i].as_py()))
