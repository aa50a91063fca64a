"""One feature snapshot in memory: the Parquet's Arrow columns and an id -> row hash index.

A lookup of B ids is vectorized end to end: the index (service/feature_store/id_index.py) probes
all B ids at once in numpy, and one Arrow `take` per feature gives the values. No Python object
per stored row exists after loading.

Stored values stay raw (as the Parquet has them). They are encoded by the model's own encoders
(service.contract.features) together with the request's values, so a looked-up value is encoded
exactly as the same value sent inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.contract.features import category_key
from service.contract.lookups import ENTITY_KEY
from service.feature_store.id_index import IdIndex


class SnapshotError(Exception):
    """A snapshot that must not be served; the message names the file and the column."""


Column = np.ndarray | list  # numeric: (B,) float64, NaN = missing; categorical: B canonical strings or None


@dataclass(frozen=True)
class Found:
    """What a store found for B ids: `found` (B,) bool and one raw column per requested feature."""

    found: np.ndarray
    columns: dict[str, Column]

    @property
    def not_found(self) -> int:
        return int(len(self.found) - np.count_nonzero(self.found))

    @classmethod
    def missing(cls, n: int, kinds: dict[str, str]) -> Found:
        """Nothing found for n ids (no snapshot yet, or a store outage)."""
        return cls(np.zeros(n, dtype=bool),
                   {name: np.full(n, np.nan) if kind == "numeric" else [None] * n for name, kind in kinds.items()})


def check_schema(schema: pa.Schema, entity: str, kinds: dict[str, str], where: str) -> None:
    """Raise SnapshotError naming the first column that cannot feed the model's looked-up features.

    Args:
        schema: the snapshot's Arrow schema.
        entity: "item" or "user"; its key column (`item_id`, `user_id`) must be there.
        kinds: looked-up feature -> "categorical" | "numeric" (the model's encoders).
        where: the file, for the message.
    """
    key = ENTITY_KEY[entity]
    if key not in schema.names:
        raise SnapshotError(f"{where}: no {key!r} column (the {entity} id); the columns are {schema.names}")
    if not _is_key_type(schema.field(key).type):
        raise SnapshotError(f"{where}: column {key!r}: ids must be strings or integers, not {schema.field(key).type}")
    for name, kind in kinds.items():
        if name not in schema.names:
            raise SnapshotError(f"{where}: missing column {name!r} (a {kind} {entity} feature the model looks up)")
        t = _value_type(schema.field(name).type)
        ok = (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)
              or pa.types.is_boolean(t)) if kind == "categorical" else (
            pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t))
        if not ok:
            allowed = "string, integer or boolean" if kind == "categorical" else "numeric or boolean"
            raise SnapshotError(f"{where}: column {name!r}: a {kind} feature must be {allowed}, not {t}")


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def _is_key_type(t: pa.DataType) -> bool:
    t = _value_type(t)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)


class Snapshot:
    """An entity's features by id; immutable once built (a new version is a new object).

    Args:
        entity: "item" or "user".
        version: the registry version it came from (None when built from a table in a test).
        index: the ids (canonical strings) and their rows.
        columns: feature name -> (N,) Arrow array, row i belonging to the index's ids[i].
    """

    def __init__(self, entity: str, version: int | None, index: IdIndex, columns: dict[str, pa.Array]) -> None:
        self.entity = entity
        self.version = version
        self.index = index
        self.columns = columns

    @classmethod
    def from_table(cls, table: pa.Table, entity: str, version: int | None = None, where: str = "snapshot") -> Snapshot:
        """Index by id, check the ids (non-null, unique) and numeric values (no infinity); raises SnapshotError."""
        key = ENTITY_KEY[entity]
        check_schema(table.schema, entity, {}, where)
        keys = table.column(key)
        if keys.null_count:
            raise SnapshotError(f"{where}: column {key!r} has {keys.null_count} null ids")
        index = IdIndex(_as_strings(keys).combine_chunks())
        repeated = index.repeated_ids()
        if repeated:
            raise SnapshotError(f"{where}: column {key!r}: id {repeated[0]!r} appears more than once "
                                f"({len(repeated)} repeated ids)")
        columns = {}
        for name in table.column_names:
            if name == key:
                continue
            col = table.column(name).combine_chunks()
            if pa.types.is_dictionary(col.type):
                col = col.dictionary_decode()
            if pa.types.is_floating(col.type) and pc.any(pc.is_inf(col)).as_py():
                raise SnapshotError(f"{where}: column {name!r} has infinite values")
            columns[name] = col
        return cls(entity, version, index, columns)

    @property
    def rows(self) -> int:
        return len(self.index.ids)

    @property
    def nbytes(self) -> int:
        """Memory held: the id index (ids, hashes, table) plus the Arrow buffers."""
        return int(self.index.nbytes + sum(c.nbytes for c in self.columns.values()))

    def kinds_problem(self, kinds: dict[str, str]) -> str | None:
        """Why this snapshot cannot fill these features (None when it can)."""
        schema = pa.schema([pa.field(ENTITY_KEY[self.entity], pa.string()),
                            *(pa.field(n, c.type) for n, c in self.columns.items())])
        try:
            check_schema(schema, self.entity, kinds, f"{self.entity} snapshot v{self.version}")
        except SnapshotError as e:
            return str(e)
        return None

    def find(self, ids: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """B ids -> rows (B,) int64 and found (B,) bool; rows of ids not found are 0."""
        if not self.rows or not len(ids):
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        return self.index.find([i if type(i) is str else category_key(i) for i in ids])  # noqa: E721

    def lookup(self, ids: Sequence[Any], kinds: dict[str, str]) -> Found:
        """Raw values of `kinds`' features for B ids; a missing id or a null value is missing."""
        rows, found = self.find(ids)
        taken = pa.array(rows)
        columns: dict[str, Column] = {}
        for name, kind in kinds.items():
            values = self.columns[name].take(taken)
            if kind == "numeric":
                x = values.cast(pa.float64()).to_numpy(zero_copy_only=False)  # null -> NaN
                columns[name] = np.where(found, x, np.nan)
            else:
                out = values.cast(pa.string()).to_pylist()  # pyarrow's cast: the trainer's canonical strings
                for i in np.flatnonzero(~found).tolist():
                    out[i] = None
                columns[name] = out
        return Found(found, columns)


def _as_strings(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.cast(pa.string())
