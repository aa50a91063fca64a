"""The bounded shuffle: every row once, full batches, rows mixed across chunks, memory bounded."""

from __future__ import annotations

import numpy as np

from training.streaming.shuffle import ShuffleBuffer


def _run(n: int, chunk: int, capacity: int, batch: int) -> tuple[list[np.ndarray], int]:
    buf = ShuffleBuffer(capacity, batch, np.random.default_rng(0))
    out, peak = [], 0
    for i in range(0, n, chunk):
        rows = np.arange(i, min(i + chunk, n))
        out += [b[0] for b in buf.push((rows, rows * 2))]
        peak = max(peak, len(buf))
    out += [b[0] for b in buf.flush()]
    return out, peak


def test_every_row_once_in_full_batches_and_buffer_bounded() -> None:
    batches, peak = _run(n=10_000, chunk=300, capacity=2_000, batch=64)
    rows = np.concatenate(batches)
    assert np.array_equal(np.sort(rows), np.arange(10_000))
    assert all(len(b) == 64 for b in batches[:-1]) and len(batches) == -(-10_000 // 64)
    assert peak < 2_000 + 300  # never more than the capacity plus one chunk


def test_rows_are_mixed_beyond_their_chunk() -> None:
    batches, _ = _run(n=10_000, chunk=500, capacity=4_000, batch=100)
    first = batches[0]
    assert len(np.unique(first // 500)) > 3  # the first batch draws on several chunks


def test_a_buffer_larger_than_the_epoch_is_a_full_permutation() -> None:
    batches, _ = _run(n=1_000, chunk=100, capacity=5_000, batch=10)
    rows = np.concatenate(batches)
    assert sorted(rows) == list(range(1_000)) and not np.array_equal(rows, np.arange(1_000))
