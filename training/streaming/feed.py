"""What the training loop reads: batches of the training split, and validation rows, for one rank.

    MemoryFeed    the in-memory split: a fresh permutation each epoch, one gather, zero-copy slices; with
                  several ranks each takes its own contiguous share of the permutation (disjoint rows)
    StreamFeed    the streamed split: each epoch the row groups in a new random order, dealt to the ranks
                  by rows (each rank reads its own row groups only), read and encoded on a background
                  thread, mixed in a ShuffleBuffer
    EvalFeed      validation rows for the validation loss, a rank's shard of them (in memory or streamed)

A batch carries `rows`: its rows' positions in the training split (the distributed test checks that
ranks never share one).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from training.data.tables import Encoded
from training.modeling.bias_tower import BiasEncoders
from training.streaming.plan import StreamPlan
from training.streaming.shuffle import ShuffleBuffer
from training.streaming.splits import PieceRef, StreamedSplit, piece_tables, split_pieces

PREFETCH_CHUNKS = 4


@dataclass
class Batch:
    inputs: tuple[torch.Tensor, ...]  # categorical (B, C) int64, numeric (B, F) float32[, bias inputs]
    labels: torch.Tensor  # (B, T) float32
    mask: torch.Tensor  # (B, T) bool
    rows: np.ndarray | None = None  # (B,) positions in the training split


@dataclass(frozen=True)
class SplitTensors:
    """One in-memory split as the training graph reads it: inputs (categorical, numeric[, bias ...]), labels, mask."""

    inputs: tuple[torch.Tensor, ...]
    labels: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def of(cls, e: Encoded, bias: tuple[np.ndarray, np.ndarray] | None) -> SplitTensors:
        inputs = [torch.from_numpy(e.categorical), torch.from_numpy(e.numeric)]
        if bias is not None:
            inputs += [torch.from_numpy(a) for a in bias]
        return cls(tuple(inputs), torch.from_numpy(e.labels), torch.from_numpy(e.mask))

    def __len__(self) -> int:
        return len(self.labels)


class MemoryFeed:
    def __init__(self, data: SplitTensors, batch_size: int, generator: torch.Generator) -> None:
        self.data, self.batch_size, self.generator = data, batch_size, generator

    def rows_for(self, epoch: int, rank: int, world: int) -> int:
        return len(self.data) // world

    def batches(self, epoch: int, rank: int, world: int) -> Iterator[Batch]:
        perm = torch.randperm(len(self.data), generator=self.generator)  # the same draw on every rank
        m = self.rows_for(epoch, rank, world)
        mine = perm[rank * m:(rank + 1) * m]
        inputs = [x[mine] for x in self.data.inputs]  # one gather per epoch, then zero-copy slices
        labels, mask, rows = self.data.labels[mine], self.data.mask[mine], mine.numpy()
        for i in range(0, m, self.batch_size):
            sl = slice(i, i + self.batch_size)
            yield Batch(tuple(x[sl] for x in inputs), labels[sl], mask[sl], rows[sl])


class StreamFeed:
    def __init__(self, plan: StreamPlan, bias: BiasEncoders | None, batch_size: int, seed: int) -> None:
        self.plan, self.bias, self.batch_size, self.seed = plan, bias, batch_size, seed
        self.refs = split_pieces(plan, "train")
        self.buffer_rows = plan.spec.data.streaming.shuffle_buffer

    def deal(self, epoch: int, world: int) -> list[list[PieceRef]]:
        """Each rank's row groups this epoch: a seeded random order (the same on every rank), each row group
        to the rank with the fewest rows so far, so shares differ by at most one row group."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.refs))
        shares: list[list[PieceRef]] = [[] for _ in range(world)]
        load = np.zeros(world, dtype=np.int64)
        for i in order:
            r = int(np.argmin(load))
            shares[r].append(self.refs[i])
            load[r] += self.refs[i].rows
        return shares

    def rows_for(self, epoch: int, rank: int, world: int) -> int:
        return sum(r.rows for r in self.deal(epoch, world)[rank])

    def batches(self, epoch: int, rank: int, world: int) -> Iterator[Batch]:
        buffer = ShuffleBuffer(self.buffer_rows, self.batch_size, np.random.default_rng([self.seed, epoch, rank, 1]))
        with _Reader(self, self.deal(epoch, world)[rank]) as chunks:
            for chunk in chunks:
                yield from map(_batch, buffer.push(chunk))
        yield from map(_batch, buffer.flush())

    def encode(self, ref: PieceRef) -> Iterator[tuple[np.ndarray, ...]]:
        """The piece's training rows as arrays: categorical, numeric[, bias categorical, bias numeric], labels,
        mask, positions."""
        pos = ref.offset
        for table in piece_tables(self.plan, "train", ref):
            e = StreamedSplit.encode_with(self.plan, table)
            bias = self.bias.encode(table) if self.bias is not None else ()
            rows = np.arange(pos, pos + table.num_rows)
            pos += table.num_rows
            yield (e.categorical, e.numeric, *bias, e.labels, e.mask, rows)


def _batch(arrays: tuple[np.ndarray, ...]) -> Batch:
    *inputs, labels, mask, rows = arrays
    return Batch(tuple(torch.from_numpy(a) for a in inputs), torch.from_numpy(labels), torch.from_numpy(mask), rows)


class _Reader:
    """Reads and encodes a rank's row groups on a background thread, a few chunks ahead of training.

    Parquet decoding and numpy release the GIL, so reading overlaps the training step. Leaving the
    `with` block early (the rank did its agreed number of steps) stops the thread.
    """

    _DONE = object()

    def __init__(self, feed: StreamFeed, refs: list[PieceRef]) -> None:
        self.feed, self.refs = feed, refs
        self.queue: queue.Queue = queue.Queue(maxsize=PREFETCH_CHUNKS)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="stream-reader", daemon=True)

    def _run(self) -> None:
        try:
            for ref in self.refs:
                for chunk in self.feed.encode(ref):
                    if not self._put(chunk):
                        return
            self._put(self._DONE)
        except BaseException as e:  # handed to the training thread, which raises it
            self._put(e)

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __enter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        self.thread.start()
        return self._chunks()

    def _chunks(self) -> Iterator[tuple[np.ndarray, ...]]:
        while (item := self.queue.get()) is not self._DONE:
            if isinstance(item, BaseException):
                raise item
            yield item

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


class EvalFeed:
    """Validation rows as the training graph reads them (with bias inputs when it has a tower), for the
    validation loss; `shard` gives a rank its disjoint share."""

    def __init__(self, data: SplitTensors | StreamedSplit, bias: BiasEncoders | None, batch_rows: int) -> None:
        self.data, self.bias, self.batch_rows = data, bias, batch_rows

    def batches(self, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        if isinstance(self.data, SplitTensors):
            n = len(self.data)
            lo, hi = n * rank // world, n * (rank + 1) // world
            for i in range(lo, hi, self.batch_rows):
                sl = slice(i, min(i + self.batch_rows, hi))
                yield Batch(tuple(x[sl] for x in self.data.inputs), self.data.labels[sl], self.data.mask[sl])
            return
        _, shard = self.data.shard(rank, world)
        for table in self.data.tables(shard.refs):
            e = self.data.encode(table)
            bias = self.bias.encode(table) if self.bias is not None else ()
            yield _batch((e.categorical, e.numeric, *bias, e.labels, e.mask, None))
