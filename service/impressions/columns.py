"""Impressions -> one Arrow record batch: a row per returned candidate (runs on the writer thread).

The request thread handed over references (service/impressions/record.py); here each column is
gathered for the top-k rows of every record of the batch and converted once, with numpy and
pyarrow doing the per-row work, since this thread shares the GIL with the requests.

Raw feature values are logged as the encoder read them (after the feature-store fill, before
encoding): categorical ones as their canonical string (`category_key`, the form the vocabularies
are matched in), numeric ones as float64 in raw units; missing is null. `defaulted` names the
logged features that were missing (the model used its default), `clipped` the numeric ones outside
the training range (the model saw the range's edge): the trainer re-applies both from the raw value.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa

from service.contract.features import SharedValue, category_key
from service.impressions.record import (
    FLAG_FIELDS,
    HEAD_PREFIX,
    REQUEST_FIELDS,
    Impression,
    LoggedFeature,
)


def record_batch(records: Sequence[Impression], replica: str) -> pa.RecordBatch:
    """Records of one layout -> a batch with layout.schema: sum of the records' top-k rows."""
    layout = records[0].layout
    picks = [r.order.tolist() for r in records]
    ks = np.fromiter(map(len, picks), dtype=np.int64, count=len(picks))
    repeat = pa.array(np.repeat(np.arange(len(records), dtype=np.int32), ks))  # row -> its record
    out: dict[str, pa.Array] = _request_columns(records, repeat, ks, replica)
    out["item_id"] = _strings(_gather([r.item_ids for r in records], picks))
    out["position"] = pa.array(np.concatenate([np.arange(1, k + 1, dtype=np.int32) for k in ks.tolist()]))
    out["score"] = pa.array(np.concatenate([_float(r.scores)[r.order] for r in records]))
    for task in layout.tasks:
        out[f"{HEAD_PREFIX}{task}"] = pa.array(np.concatenate([_float(r.heads[task])[r.order] for r in records]))
    defaulted, clipped = [], []
    for f in layout.features:
        columns = [r.columns.get(f.name) for r in records]
        values, missing, outside = (_shared_feature(f, columns, repeat, ks) if f.shared
                                    else _feature(f, columns, records, picks))
        out[f.column] = values
        defaulted.append(missing)
        clipped.append(outside)
    if layout.features:
        names = [f.name for f in layout.features]
        out[FLAG_FIELDS[0]] = _names_per_row(np.stack(defaulted, axis=1), names)
        out[FLAG_FIELDS[1]] = _names_per_row(np.stack(clipped, axis=1), names)
    return pa.RecordBatch.from_arrays([out[name] for name in layout.schema.names], schema=layout.schema)


def _request_columns(records: Sequence[Impression], repeat: pa.Array, ks: np.ndarray, replica: str
                     ) -> dict[str, pa.Array]:
    """One value per record, repeated over its rows: numbers by np.repeat, strings as dictionary arrays."""
    numbers = {"ts": [round(r.ts * 1000) for r in records], "model_version": [r.model_version for r in records],
               "weights_generation": [r.weights_generation for r in records]}
    strings = {"request_id": [r.request_id for r in records], "replica": [replica] * len(records),
               "model_name": [r.model_name for r in records],
               "model_role": [r.model_role for r in records], "profile": [r.profile for r in records],
               "experiment": [r.experiment for r in records], "arm": [r.arm for r in records],
               "user_key": [r.user_key for r in records]}
    out = {}
    for name, kind in REQUEST_FIELDS:
        if name in numbers:
            out[name] = pa.array(np.repeat(np.array(numbers[name], dtype=np.int64), ks), type=kind)
        else:
            out[name] = _repeated(pa.array(strings[name], type=pa.string()), repeat)
    return out


def _shared_feature(f: LoggedFeature, columns: list[Any], repeat: pa.Array, ks: np.ndarray
                    ) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """A user or context feature, one value per record (request_columns' SharedValue), repeated over its
    rows: a dictionary array for a categorical one, np.repeat for a numeric one."""
    once = [c.value if isinstance(c, SharedValue) else None for c in columns]
    if f.categorical:
        strings = _strings(once)
        missing = np.repeat(strings.is_null().to_numpy(zero_copy_only=False), ks)
        return _repeated(strings, repeat), missing, np.zeros(len(missing), dtype=bool)
    return _numeric(f, np.repeat(np.array(once, dtype=np.float64), ks))  # None -> NaN


def _feature(f: LoggedFeature, columns: list[Any], records: Sequence[Impression], picks: list[list[int]]
             ) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(rows,) values, missing mask, clipped mask of one feature over the batch."""
    if f.categorical:
        values = _strings(_gather(columns, picks))
        return values, values.is_null().to_numpy(zero_copy_only=False), np.zeros(len(values), dtype=bool)
    return _numeric(f, np.concatenate([_numbers(c, r.order, len(p)) for c, r, p in zip(columns, records, picks,
                                                                                     strict=True)]))


def _numeric(f: LoggedFeature, x: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    missing = np.isnan(x)
    outside = (x < f.clip[0]) | (x > f.clip[1]) if f.clip is not None else np.zeros(len(x), dtype=bool)
    return pa.array(x, from_pandas=True), missing, outside  # from_pandas: NaN -> null


def _repeated(once: pa.Array, repeat: pa.Array) -> pa.DictionaryArray:
    """(R,) strings -> (rows,) dictionary array, row i = once[repeat[i]]; a null is a null index (Parquet
    cannot write a null inside the dictionary)."""
    encoded = once.dictionary_encode()
    return pa.DictionaryArray.from_arrays(encoded.indices.take(repeat), encoded.dictionary)


def _gather(columns: list[Any], picks: list[list[int]]) -> list[Any]:
    """The picked values of each record's column, concatenated (a shared value repeated)."""
    out: list[Any] = []
    for column, picked in zip(columns, picks, strict=True):
        if column is None:
            out.extend([None] * len(picked))
        elif isinstance(column, SharedValue):
            out.extend([column.value] * len(picked))
        elif isinstance(column, np.ndarray):
            out.extend(column[picked].tolist())
        elif len(picked) == 1:
            out.append(column[picked[0]])
        elif picked:
            out.extend(itemgetter(*picked)(column))
    return out


def _strings(values: list[Any]) -> pa.Array:
    """Values -> strings as vocabularies match them; the common all-strings case converts in C."""
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([category_key(v) for v in values], type=pa.string())


def _numbers(column: Any, order: np.ndarray, k: int) -> np.ndarray:
    if column is None:
        return np.full(k, np.nan)
    if isinstance(column, SharedValue):
        return np.full(k, np.nan if column.value is None else float(column.value))
    return np.asarray(column, dtype=np.float64)[order]  # a list: None -> NaN


def _float(a: np.ndarray) -> np.ndarray:
    return a if a.dtype == np.float64 else a.astype(np.float64)


def _names_per_row(mask: np.ndarray, names: list[str]) -> pa.Array:
    """(rows, F) bool -> list<string> per row: the names of its True columns (all numpy, no row loop)."""
    offsets = np.zeros(len(mask) + 1, dtype=np.int32)
    if not mask.any():  # the common case: nothing defaulted or clipped in the whole batch
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array([], type=pa.string()))
    rows, cols = np.nonzero(mask)
    offsets[1:] = np.cumsum(np.bincount(rows, minlength=len(mask)))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(names, type=pa.string()).take(pa.array(cols)))
