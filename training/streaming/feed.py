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

from training.data.bias_inputs import BiasEncoders
from training.data.tables import Encoded
from training.streaming import grouping as G
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
    group: torch.Tensor | None = None  # (B,) int64 request of each row, 0..G-1 (batches of whole requests)

    @property
    def requests(self) -> int:
        return int(self.group.max()) + 1 if self.group is not None and len(self.group) else 0


@dataclass(frozen=True)
class SplitTensors:
    """One in-memory split as the training graph reads it: inputs (categorical, numeric[, bias ...]), labels, mask."""

    inputs: tuple[torch.Tensor, ...]
    labels: torch.Tensor
    mask: torch.Tensor
    request: np.ndarray | None = None  # (N,) request index: batches of whole requests (a ranking task)

    @classmethod
    def of(cls, e: Encoded, bias: tuple[np.ndarray, np.ndarray] | None, grouped: bool = False) -> SplitTensors:
        inputs = [torch.from_numpy(e.categorical), torch.from_numpy(e.numeric)]
        if bias is not None:
            inputs += [torch.from_numpy(a) for a in bias]
        return cls(tuple(inputs), torch.from_numpy(e.labels), torch.from_numpy(e.mask), e.request if grouped else None)

    def __len__(self) -> int:
        return len(self.labels)


class MemoryFeed:
    """With `data.request` (a ranking task), batches of whole requests (training/streaming/grouping.py): each
    epoch the requests in a new order drawn from (seed, epoch), every rank its own whole requests."""

    def __init__(self, data: SplitTensors, batch_size: int, generator: torch.Generator, seed: int = 0) -> None:
        self.data, self.batch_size, self.generator, self.seed = data, batch_size, generator, seed
        self._deal: tuple[int, int, np.ndarray, np.ndarray] | None = None

    def rows_for(self, epoch: int, rank: int, world: int) -> int:
        if self.data.request is None:
            return len(self.data) // world
        _, bounds = self.deal(epoch, world)
        return int(bounds[rank + 1] - bounds[rank])

    def deal(self, epoch: int, world: int) -> tuple[np.ndarray, np.ndarray]:
        """(request-major row order of the epoch, each rank's [start, end) bounds in it); the same on every rank."""
        if self._deal is None or self._deal[:2] != (epoch, world):
            order = G.request_major(self.data.request, np.random.default_rng([self.seed, epoch]))
            self._deal = (epoch, world, order, G.share_bounds(self.data.request[order], world))
        return self._deal[2], self._deal[3]

    def batches(self, epoch: int, rank: int, world: int) -> Iterator[Batch]:
        if self.data.request is not None:
            yield from self._request_batches(epoch, rank, world)
            return
        perm = torch.randperm(len(self.data), generator=self.generator)  # the same draw on every rank
        m = self.rows_for(epoch, rank, world)
        mine = perm[rank * m:(rank + 1) * m]
        inputs = [x[mine] for x in self.data.inputs]  # one gather per epoch, then zero-copy slices
        labels, mask, rows = self.data.labels[mine], self.data.mask[mine], mine.numpy()
        for i in range(0, m, self.batch_size):
            sl = slice(i, i + self.batch_size)
            yield Batch(tuple(x[sl] for x in inputs), labels[sl], mask[sl], rows[sl])

    def _request_batches(self, epoch: int, rank: int, world: int) -> Iterator[Batch]:
        order, bounds = self.deal(epoch, world)
        mine = order[bounds[rank]:bounds[rank + 1]]
        piece = G.pieces(self.data.request[mine], self.batch_size)
        index = torch.from_numpy(mine)
        inputs = [x[index] for x in self.data.inputs]
        labels, mask = self.data.labels[index], self.data.mask[index]
        cut = G.cuts(piece, self.batch_size)
        for a, b in zip(cut[:-1], cut[1:], strict=True):
            yield Batch(tuple(x[a:b] for x in inputs), labels[a:b], mask[a:b], mine[a:b],
                        torch.from_numpy(G.local_groups(piece[a:b])))


class StreamFeed:
    """With `grouped` (a ranking task), batches of whole requests: the shuffle buffer mixes requests by the
    value of data.request_id (a request whose rows lie in row groups dealt to two ranks is two lists)."""

    def __init__(self, plan: StreamPlan, bias: BiasEncoders | None, batch_size: int, seed: int,
                 grouped: bool = False) -> None:
        self.plan, self.bias, self.batch_size, self.seed = plan, bias, batch_size, seed
        self.refs = split_pieces(plan, "train")
        self.buffer_rows = plan.spec.data.streaming.shuffle_buffer
        self.request_id = plan.spec.data.request_id if grouped else None

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
        grouped = self.request_id is not None  # the request keys ride last (encode)
        rng = np.random.default_rng([self.seed, epoch, rank, 1])
        buffer = ShuffleBuffer(self.buffer_rows, self.batch_size, rng, -1 if grouped else None)
        with _Reader(self, self.deal(epoch, world)[rank]) as chunks:
            for chunk in chunks:
                yield from (_batch(b, grouped) for b in buffer.push(chunk))
        yield from (_batch(b, grouped) for b in buffer.flush())

    def encode(self, ref: PieceRef) -> Iterator[tuple[np.ndarray, ...]]:
        """The piece's training rows as arrays: categorical, numeric[, bias categorical, bias numeric], labels,
        mask, positions."""
        pos = ref.offset
        for table in piece_tables(self.plan, "train", ref):
            e = StreamedSplit.encode_with(self.plan, table)
            bias = self.bias.encode(table) if self.bias is not None else ()
            rows = np.arange(pos, pos + table.num_rows)
            pos += table.num_rows
            keys = (G.request_keys(table.column(self.request_id)),) if self.request_id else ()
            yield (e.categorical, e.numeric, *bias, e.labels, e.mask, rows, *keys)


def _batch(arrays: tuple[np.ndarray, ...], grouped: bool = False) -> Batch:
    """A batch from (inputs..., labels, mask, rows[, request numbers 0..G-1])."""
    group = torch.from_numpy(arrays[-1]) if grouped else None
    *inputs, labels, mask, rows = arrays[:-1] if grouped else arrays
    return Batch(tuple(torch.from_numpy(a) for a in inputs), torch.from_numpy(labels), torch.from_numpy(mask), rows,
                 group)


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
    validation loss; `shard` gives a rank its disjoint share. With `grouped` (a ranking task) each batch
    carries its rows' requests: in memory the rows go request by request and batches hold whole requests;
    streamed, a record batch's requests (a request across two record batches is two lists)."""

    def __init__(self, data: SplitTensors | StreamedSplit, bias: BiasEncoders | None, batch_rows: int,
                 grouped: bool = False) -> None:
        self.data, self.bias, self.batch_rows, self.grouped = data, bias, batch_rows, grouped

    def batches(self, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        if isinstance(self.data, SplitTensors):
            yield from self._memory(rank, world)
            return
        _, shard = self.data.shard(rank, world)
        for ref in shard.refs:
            pos = ref.offset
            for table in self.data.tables([ref]):
                e = self.data.encode(table)
                bias = self.bias.encode(table) if self.bias is not None else ()
                group = (G.local_groups(self.data.request[pos:pos + table.num_rows]),) if self.grouped else ()
                pos += table.num_rows
                yield _batch((e.categorical, e.numeric, *bias, e.labels, e.mask, None, *group), self.grouped)

    def _memory(self, rank: int, world: int) -> Iterator[Batch]:
        d, n = self.data, len(self.data)
        if not self.grouped:
            lo, hi = n * rank // world, n * (rank + 1) // world
            for i in range(lo, hi, self.batch_rows):
                sl = slice(i, min(i + self.batch_rows, hi))
                yield Batch(tuple(x[sl] for x in d.inputs), d.labels[sl], d.mask[sl])
            return
        order = np.argsort(d.request, kind="stable")  # request by request, the same on every rank
        bounds = G.share_bounds(d.request[order], world)
        mine = order[bounds[rank]:bounds[rank + 1]]
        piece = G.pieces(d.request[mine], self.batch_rows)
        cut = G.cuts(piece, self.batch_rows)
        for a, b in zip(cut[:-1], cut[1:], strict=True):
            rows = torch.from_numpy(mine[a:b])
            yield Batch(tuple(x[rows] for x in d.inputs), d.labels[rows], d.mask[rows], None,
                        torch.from_numpy(G.local_groups(piece[a:b])))
