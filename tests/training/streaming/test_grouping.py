"""Batches of whole requests for the ranking head (issue 22, item 1): in memory, through the shuffle buffer,
and dealt to several ranks; an epoch keeps its ceil(rows / batch_size) steps."""

from __future__ import annotations

import numpy as np
import torch

from training.streaming import grouping as G
from training.streaming.feed import MemoryFeed, SplitTensors
from training.streaming.shuffle import ShuffleBuffer


def _requests(n_requests: int = 300, seed: int = 0) -> np.ndarray:
    """(N,) request index, rows of a request interleaved with other requests' rows (as logs may hold them)."""
    rng = np.random.default_rng(seed)
    request = np.repeat(np.arange(n_requests), rng.integers(1, 60, n_requests))
    return request[rng.permutation(len(request))]


def _whole(batches_requests: list[np.ndarray], request: np.ndarray, batch_size: int) -> None:
    """Every request is in exactly one batch, unless it is longer than a batch (then in pieces of <= batch_size)."""
    seen: dict[int, int] = {}
    for reqs in batches_requests:
        for r in np.unique(reqs):
            seen[r] = seen.get(r, 0) + 1
    sizes = np.bincount(request)
    for r, times in seen.items():
        assert times == 1 or sizes[r] > batch_size, (r, times, sizes[r])


def _same_partition(a: np.ndarray, b: np.ndarray) -> None:
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    assert len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_cuts_keep_the_step_count_and_never_split_a_request() -> None:
    request = _requests()
    order = G.request_major(request, np.random.default_rng(1))
    piece = G.pieces(request[order], 50)
    cut = G.cuts(piece, 50)
    assert len(cut) - 1 == -(-len(request) // 50)  # ceil(n / batch_size) batches, as without requests
    assert all(piece[a] != piece[a - 1] for a in cut[1:-1])  # every cut at a piece start
    assert np.bincount(piece).max() <= 50


def test_the_memory_feed_gives_each_rank_whole_requests() -> None:
    request = _requests()
    n = len(request)
    data = SplitTensors((torch.zeros(n, 1, dtype=torch.int64), torch.arange(n, dtype=torch.float32)[:, None]),
                        torch.zeros(n, 1), torch.ones(n, 1, dtype=torch.bool), request)
    feed = MemoryFeed(data, 64, torch.Generator().manual_seed(0), seed=3)
    for world in (1, 2):
        rows = [np.concatenate([b.rows for b in feed.batches(1, r, world)]) for r in range(world)]
        assert sum(map(len, rows)) == n and len(np.unique(np.concatenate(rows))) == n  # disjoint, complete
        if world == 2:
            assert not set(request[rows[0]]) & set(request[rows[1]])  # no request on both ranks
        for r in range(world):
            batches = list(feed.batches(1, r, world))
            assert len(batches) == -(-feed.rows_for(1, r, world) // 64)
            _whole([request[b.rows] for b in batches], request, 64)
            for b in batches:  # the batch's group numbers are its requests, renumbered
                _same_partition(request[b.rows], b.group.numpy())
    epoch1 = [b.rows for b in feed.batches(1, 0, 1)]
    epoch2 = [b.rows for b in feed.batches(2, 0, 1)]
    assert not np.array_equal(epoch1[0], epoch2[0])  # a new order every epoch


def test_the_shuffle_buffer_mixes_requests_not_rows() -> None:
    rng = np.random.default_rng(0)
    request = np.repeat(np.arange(400), rng.integers(1, 40, 400))  # contiguous, as in most logs
    keys = request * 7919 + 11
    buf = ShuffleBuffer(2_000, 100, np.random.default_rng(1), key=-1)
    out = []
    for i in range(0, len(request), 500):
        rows = np.arange(i, min(i + 500, len(request)))
        out += list(buf.push((rows, keys[rows])))
    out += list(buf.flush())
    rows = np.concatenate([b[0] for b in out])
    assert np.array_equal(np.sort(rows), np.arange(len(request)))
    _whole([request[b[0]] for b in out], request, 100)
    first = np.unique(request[out[0][0]])
    assert np.ptp(first) + 1 > len(first)  # not the first requests in order: mixed across chunks
    for b in out:
        _same_partition(keys[b[0]], b[1])
