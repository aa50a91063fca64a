"""A bounded shuffle: rows mix in a buffer of `capacity` rows, not across the whole epoch.

Chunks (tuples of row-aligned arrays, e.g. one Parquet record batch encoded) go in; once the buffer
holds `capacity` rows it is shuffled, all but half of it is emitted as batches, and the other half
stays to mix with what comes next. `flush` emits the rest. Each row is emitted exactly once, and
every batch but the last is full, so an epoch of n rows is ceil(n / batch_size) batches. With the
row groups read in a random order (training/streaming/feed.py), this is the usual streaming shuffle
(as tf.data's shuffle buffer after interleaving files); with capacity >= the epoch's rows it is a
full permutation of the epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from training.streaming import grouping as G

Arrays = tuple[np.ndarray, ...]


class ShuffleBuffer:
    """`key`: the index of an (N,) int64 request-key array among a chunk's arrays, for batches of whole
    requests (training/streaming/grouping.py): the buffer then shuffles requests, not rows, emits up to a
    request start, and each batch's key array comes out as its rows' request numbers 0..G-1."""

    def __init__(self, capacity: int, batch_size: int, rng: np.random.Generator, key: int | None = None) -> None:
        self.capacity = max(capacity, 2 * batch_size)
        self.batch_size, self.rng, self.key = batch_size, rng, key
        self._pending: list[Arrays] = []
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    def push(self, chunk: Arrays) -> Iterator[Arrays]:
        """Add a chunk; yields the batches that became ready."""
        self._pending.append(chunk)
        self._rows += len(chunk[0])
        if self._rows < self.capacity:
            return
        # The newest chunk's last request may go on in the next chunk: it stays in the buffer this time.
        rows = self._shuffled(chunk[self.key][-1] if self.key is not None and len(chunk[0]) else None)
        emit = (len(rows[0]) - self.capacity // 2) // self.batch_size * self.batch_size
        if self.key is not None and (begin := G.starts(rows[self.key])[1:]).size:  # keep a request whole
            emit = int(begin[np.searchsorted(begin, emit, side="right") - 1]) if begin[0] <= emit else emit
        self._pending = [tuple(a[emit:] for a in rows)]
        self._rows = len(rows[0]) - emit
        yield from self._batches(tuple(a[:emit] for a in rows))

    def flush(self) -> Iterator[Arrays]:
        """Everything left, shuffled; the last batch may be short."""
        if self._rows:
            rows = self._shuffled()
            self._pending, self._rows = [], 0
            yield from self._batches(rows)

    def _shuffled(self, open_key: int | None = None) -> Arrays:
        """The pending rows shuffled (request-major with a key; the rows of `open_key` last)."""
        merged = tuple(np.concatenate(parts) for parts in zip(*self._pending, strict=True))
        if self.key is None:
            order = self.rng.permutation(len(merged[0]))
        else:
            order = G.request_major(merged[self.key], self.rng)
            if open_key is not None:
                last = merged[self.key][order] == open_key
                order = np.r_[order[~last], order[last]]
        return tuple(a[order] for a in merged)

    def _batches(self, rows: Arrays) -> Iterator[Arrays]:
        if self.key is None:
            for i in range(0, len(rows[0]), self.batch_size):
                yield tuple(a[i:i + self.batch_size] for a in rows)
            return
        piece = G.pieces(rows[self.key], self.batch_size)
        cut = G.cuts(piece, self.batch_size)
        for a, b in zip(cut[:-1], cut[1:], strict=True):
            batch = [x[a:b] for x in rows]
            batch[self.key] = G.local_groups(piece[a:b])
            yield tuple(batch)
