"""Batches of whole requests, for the ranking head's listwise losses (training/modeling/listwise.py).

A listwise loss compares a request's candidates with each other, so a batch must hold whole requests. Rows
are put in *request-major* order (requests in a random order, each request's rows together), and the order
is cut into batches at request starts: cut i is the last request start at or before i * batch_size. So an
epoch of n rows is still ceil(n / batch_size) batches (the step count every rank agrees on), each within a
request's size of batch_size. A request longer than batch_size is first split into pieces of at most
batch_size rows (each piece a list of its own), which keeps every cut distinct.

The in-memory feed orders the whole split this way each epoch, the streamed feed its shuffle buffer
(training/streaming/shuffle.py); both deal whole requests to the ranks under torchrun.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def request_major(request: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N,) row order: requests (any int64 keys) in a random order, a request's rows together in their order."""
    keys, inverse = np.unique(request, return_inverse=True)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[rng.permutation(len(keys))] = np.arange(len(keys))
    return np.argsort(rank[inverse], kind="stable")


def starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Positions where a new run of equal keys begins (0 included)."""
    if not len(sorted_keys):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def pieces(sorted_keys: np.ndarray, max_rows: int) -> np.ndarray:
    """(N,) piece number of each row of request-major rows: one per request, a long request cut every max_rows."""
    first = starts(sorted_keys)
    run = np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(sorted_keys)]))
    offset = np.arange(len(sorted_keys)) - first[run]
    new = (offset % max_rows == 0)  # a request's first row, and every max_rows-th row after it
    return np.cumsum(new) - 1


def cuts(piece: np.ndarray, size: int) -> np.ndarray:
    """[0, c1, ..., n]: ceil(n / size) batches, cut i at the last piece start <= i * size (pieces <= size rows)."""
    n = len(piece)
    begin = starts(piece)
    grid = np.arange(size, n, size)
    inner = begin[np.searchsorted(begin, grid, side="right") - 1]
    return np.r_[0, inner, n] if n else np.zeros(1, dtype=np.int64)


def share_bounds(sorted_keys: np.ndarray, world: int) -> np.ndarray:
    """[0, b1, ..., n]: each rank's contiguous share of request-major rows, cut at the request start at or
    before r * n / world (whole requests per rank; the shares differ by at most a request)."""
    n = len(sorted_keys)
    begin = starts(sorted_keys)
    grid = np.arange(1, world) * n // world
    inner = begin[np.searchsorted(begin, grid, side="right") - 1] if len(begin) else np.zeros(world - 1, dtype=np.int64)
    return np.r_[0, inner, n]


def local_groups(piece: np.ndarray) -> np.ndarray:
    """(B,) dense request numbers 0..G-1 of one batch's rows (their piece numbers, renumbered)."""
    return np.unique(piece, return_inverse=True)[1].astype(np.int64)


def request_keys(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(N,) int64 key per row, equal for equal request ids across record batches (Python's hash of each distinct
    value: stable within the process, which is all one epoch's shuffle needs)."""
    encoded = column.combine_chunks().dictionary_encode() if isinstance(column, pa.ChunkedArray) \
        else column.dictionary_encode()
    values = np.array([hash(v) for v in encoded.dictionary.to_pylist()], dtype=np.int64)
    return values[encoded.indices.to_numpy(zero_copy_only=False)]
