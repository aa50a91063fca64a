"""The streamed splits, with the interfaces the in-memory ones have, so export, the gates and the
reports take either.

    StreamSplits     like training/data/splits.py Splits: rows, time range and first rows of a split,
                     and its raw tables read on demand (`tables`), in the dataset's order
    StreamedSplit    like training/data/tables.py Encoded for one split: len, head(n), chunks(size),
                     shard(rank, world); raw_labels / mask / request arrays for valid and test
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from training.data.tables import Encoded, encode
from training.streaming.plan import SPLITS, StreamPlan


@dataclass(frozen=True)
class PieceRef:
    """A piece that holds rows of one split, and where those rows start within the split."""

    plan: int  # index into StreamPlan.sources
    piece: int
    offset: int  # position of its first row of the split among the split's rows
    rows: int  # its rows of the split


def split_pieces(plan: StreamPlan, split: str) -> list[PieceRef]:
    """Every piece with rows of `split`, in the dataset's order (the order the rows are collected in)."""
    k, out, offset = SPLITS.index(split), [], 0
    for s, sp in enumerate(plan.sources):
        for i in range(len(sp.source.pieces)):
            if n := int(sp.rows[i, k]):
                out.append(PieceRef(s, i, offset, n))
                offset += n
    return out


def piece_tables(plan: StreamPlan, split: str, ref: PieceRef, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """The rows of `split` in one piece, a record batch at a time."""
    sp = plan.sources[ref.plan]
    k, pos = SPLITS.index(split), sp.bases[ref.piece]
    for table in sp.source.batches(sp.source.pieces[ref.piece], columns):
        codes = sp.assign(table, np.arange(pos, pos + table.num_rows))
        pos += table.num_rows
        yield table if (codes == k).all() else table.filter(pa.array(codes == k))


class StreamSplits:
    """Splits of a stream: how they were made, their sizes and time ranges, their rows on demand."""

    def __init__(self, plan: StreamPlan) -> None:
        self.plan = plan
        self.method = plan.method
        self.warnings = list(plan.warnings)

    def names(self) -> list[str]:
        return [s for s in SPLITS if s != "test" or "test" in self.plan.evals]

    def rows(self, split: str) -> int:
        return self.plan.rows(split) if split in self.names() else 0

    def holdout_name(self) -> str:
        return "test" if "test" in self.names() else "valid"

    def time_range(self, split: str, column: str | None = None) -> tuple | None:
        """(min, max) timestamp of the split, collected in pass 1 (`column` is data.timestamp)."""
        return self.plan.train_range if split == "train" else self.plan.evals[split].time_range

    def tables(self, split: str, columns: list[str] | None = None) -> Iterator[pa.Table]:
        for ref in split_pieces(self.plan, split):
            yield from piece_tables(self.plan, split, ref, columns)

    def first_rows(self, split: str, n: int) -> pa.Table:
        return first_rows(self.tables(split), n)

    @property
    def column_names(self) -> list[str]:
        return self.plan.sources[0].source.columns


def first_rows(tables: Iterator[pa.Table], n: int) -> pa.Table:
    """The first n rows of a stream of tables (fewer if it ends first), reading no further than needed."""
    parts, have = [], 0
    for table in tables:
        parts.append(table.slice(0, n - have))
        have += parts[-1].num_rows
        if have >= n:
            break
    return pa.concat_tables(parts)


class StreamedSplit:
    """One split's rows encoded as they are read. Valid and test also hold their labels and requests."""

    def __init__(self, plan: StreamPlan, split: str, batch_rows: int) -> None:
        self.plan, self.split, self.batch_rows = plan, split, batch_rows
        self.refs = split_pieces(plan, split)
        evals = plan.evals.get(split)
        self.raw_labels = evals.raw_labels if evals else None
        self.request = evals.request if evals else None
        self.mask = ~np.isnan(self.raw_labels) if evals else None

    def __len__(self) -> int:
        return sum(r.rows for r in self.refs)

    def encode(self, table: pa.Table) -> Encoded:
        return self.encode_with(self.plan, table)

    @staticmethod
    def encode_with(plan: StreamPlan, table: pa.Table) -> Encoded:
        """Rows of a streamed table as model inputs and targets (no request index: it is per split)."""
        return encode(table, plan.encoders, plan.spec, plan.scalers, requests=False)

    def tables(self, refs: list[PieceRef] | None = None) -> Iterator[pa.Table]:
        for ref in self.refs if refs is None else refs:
            yield from piece_tables(self.plan, self.split, ref)

    def chunks(self, size: int | None = None) -> Iterator[Encoded]:
        """The split's rows encoded, one record batch at a time, in order (`size` is the batches' size)."""
        for table in self.tables():
            yield self.encode(table)

    def head(self, n: int) -> Encoded:
        """The first n rows, encoded (request index over these rows)."""
        table = first_rows(self.tables(), n)
        e = self.encode(table)
        request = self.request[:table.num_rows] if self.request is not None else None
        return Encoded(e.categorical, e.numeric, e.labels, e.raw_labels, e.mask, request)

    def shard(self, rank: int, world: int) -> tuple[np.ndarray, ShardRows]:
        """Rank's share of the pieces: (their rows' positions in the split, the rows to read)."""
        mine = [r for i, r in enumerate(self.refs) if i % world == rank]
        positions = np.concatenate([np.arange(r.offset, r.offset + r.rows) for r in mine]) if mine else \
            np.zeros(0, dtype=np.int64)
        return positions, ShardRows(self, mine)


@dataclass
class ShardRows:
    """Some pieces of a streamed split: chunks() as StreamedSplit.chunks, over these pieces only."""

    split: StreamedSplit
    refs: list[PieceRef]

    def chunks(self, size: int | None = None) -> Iterator[Encoded]:
        for table in self.split.tables(self.refs):
            yield self.split.encode(table)
