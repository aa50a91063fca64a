"""How the training rows are dealt to ranks: disjoint shares that cover the split, every epoch."""

from __future__ import annotations

import numpy as np
import torch

from training.fit.train import prepare
from training.spec import RankerSpec
from training.streaming.feed import MemoryFeed, SplitTensors, StreamFeed
from training.streaming.plan import build_plan


def test_stream_deals_each_row_group_to_one_rank_with_balanced_rows(tiny_spec: RankerSpec, as_streamed) -> None:
    feed = StreamFeed(build_plan(as_streamed(tiny_spec)), None, 256, seed=0)
    for epoch in (1, 2):
        shares = feed.deal(epoch, 3)
        refs = [r for share in shares for r in share]
        assert sorted((r.plan, r.piece) for r in refs) == sorted((r.plan, r.piece) for r in feed.refs)
        rows = [sum(r.rows for r in share) for share in shares]
        assert max(rows) - min(rows) <= max(r.rows for r in feed.refs)
    assert feed.deal(1, 3) != feed.deal(2, 3)  # a new order every epoch


def test_stream_batches_of_two_ranks_are_disjoint_and_cover_the_epoch(tiny_spec: RankerSpec, as_streamed) -> None:
    feed = StreamFeed(build_plan(as_streamed(tiny_spec, shuffle_buffer=1_000)), None, 256, seed=0)
    seen = [np.concatenate([b.rows for b in feed.batches(1, r, 2)]) for r in (0, 1)]
    assert not set(seen[0]) & set(seen[1])
    assert np.array_equal(np.sort(np.concatenate(seen)), np.arange(sum(r.rows for r in feed.refs)))


def test_memory_ranks_take_disjoint_halves_of_one_permutation(tiny_spec: RankerSpec) -> None:
    prep = prepare(tiny_spec)
    rows = [np.concatenate([b.rows for b in MemoryFeed(SplitTensors.of(prep.train, None), 100,
                                                       torch.Generator().manual_seed(0)).batches(1, r, 2)])
            for r in (0, 1)]
    assert len(rows[0]) == len(rows[1]) == len(prep.train) // 2
    assert not set(rows[0]) & set(rows[1])
