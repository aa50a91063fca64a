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

Arrays = tuple[np.ndarray, ...]


class ShuffleBuffer:
    def __init__(self, capacity: int, batch_size: int, rng: np.random.Generator) -> None:
        self.capacity = max(capacity, 2 * batch_size)
        self.batch_size, self.rng = batch_size, rng
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
        rows = self._shuffled()
        emit = (len(rows[0]) - self.capacity // 2) // self.batch_size * self.batch_size
        self._pending = [tuple(a[emit:] for a in rows)]
        self._rows = len(rows[0]) - emit
        yield from self._batches(tuple(a[:emit] for a in rows))

    def flush(self) -> Iterator[Arrays]:
        """Everything left, shuffled; the last batch may be short."""
        if self._rows:
            rows = self._shuffled()
            self._pending, self._rows = [], 0
            yield from self._batches(rows)

    def _shuffled(self) -> Arrays:
        merged = tuple(np.concatenate(parts) for parts in zip(*self._pending, strict=True))
        order = self.rng.permutation(len(merged[0]))
        return tuple(a[order] for a in merged)

    def _batches(self, rows: Arrays) -> Iterator[Arrays]:
        for i in range(0, len(rows[0]), self.batch_size):
            yield tuple(a[i:i + self.batch_size] for a in rows)
