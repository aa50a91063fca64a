"""A Parquet dataset as pieces (one row group each) read a record batch at a time.

The pieces are in the order an in-memory read (`pyarrow.dataset.Dataset.to_table`) returns the rows,
so a row's position in that order (its `pos`) is the same for both paths: the time split breaks ties
by it, and validation and test rows are collected in it.

    Source(spec, path)        file, directory (hive partitions), glob or s3:// (fsspec): the columns a
                              run reads are checked as load_table checks them, the [start, end) window applied
    Source.pieces             Piece per row group; `rows` from the Parquet metadata (before the window)
    Source.batches(piece)     pa.Table batches of one piece, lookup tables joined, values validated
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as ds

from training.data import DataError
from training.data.tables import dataset, read_columns, validate_values, window_filter
from training.features.join import FeatureTableError, join_lookup_tables, joined_columns, read_lookup_tables
from training.spec import RankerSpec


@dataclass(frozen=True, eq=False)
class Piece:
    """One row group of one file."""

    fragment: ds.ParquetFileFragment
    rows: int  # rows in the row group, before the window filter

    @property
    def name(self) -> str:
        return f"{self.fragment.path}#{self.fragment.row_groups[0].id}"


class Source:
    """One Parquet dataset of the spec (data.path, or one of data.train / valid / test)."""

    def __init__(self, spec: RankerSpec, path: str, batch_rows: int | None = None) -> None:
        self.spec, self.path = spec, path
        self.data = dataset(path)
        self.columns = read_columns(self.data, spec, path)
        self.filter = window_filter(self.data.schema, spec.data)
        self.batch_rows = batch_rows or spec.data.streaming.read_batch_rows
        self._lookups: dict[str, pa.Table] | None = None
        self.pieces = [Piece(rg, rg.row_groups[0].num_rows)
                       for frag in self.data.get_fragments() for rg in frag.split_by_row_group()]

    @property
    def rows(self) -> int:
        """Rows before the window filter (Parquet metadata: reads no data)."""
        return sum(p.rows for p in self.pieces)

    def batches(self, piece: Piece, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """The piece's rows inside the window, `batch_rows` at a time, with the spec's columns (validated
        row by row, as load_table validates), or just `columns` (not validated: a later read of rows
        already checked). Lookup tables are joined when a looked-up column is asked for."""
        validate = columns is None
        wanted = self.columns if columns is None else columns
        joined = joined_columns(self.spec)
        join = any(c in joined for c in wanted)
        read = [c for c in self.columns if c in wanted or (join and c in self._join_inputs())]
        for batch in piece.fragment.to_batches(schema=self.data.schema, columns=read, filter=self.filter,
                                               batch_size=self.batch_rows, use_threads=False):
            table = pa.Table.from_batches([batch])
            if join:
                table = self._join(table)
            if validate:
                validate_values(table, self.spec)
            yield table

    def _join_inputs(self) -> set[str]:
        from training.features.join import join_keys

        return {*join_keys(self.spec), *([self.spec.data.timestamp] if self.spec.data.timestamp else [])}

    def _join(self, table: pa.Table) -> pa.Table:
        try:
            if self._lookups is None:
                self._lookups = read_lookup_tables(self.spec)
            return join_lookup_tables(table, self.spec, self._lookups)
        except FeatureTableError as e:
            raise DataError(str(e)) from e
