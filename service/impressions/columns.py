"""Impressions -> one Arrow record batch: a row per returned candidate (runs on the writer thread).

The request thread handed over references (service/impressions/record.py); here each column is
gathered for the top-k rows of every record of the batch and converted once, with numpy and
pyarrow doing the per-row work, since this thread shares the GIL with the requests.

A categorical item column (the candidates' ids, an item feature) is taken, where the records carry
what the model encoded it to, from the model's vocabulary by those codes (in C, no string per row made
in Python); only the rows the vocabulary does not know (new items, missing values) read the request's
own values.

Raw feature values are logged as the encoder read them (after the feature-store fill, before
encoding): categorical ones as their canonical string (`category_key`, the form the vocabularies
are matched in), numeric ones as float64 in raw units; missing is null. `defaulted` names the
logged features that were missing (the model used its default), `clipped` the numeric ones outside
the training range (the model saw the range's edge): the trainer re-applies both from the raw value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.contract.features import SharedValue, category_key
from service.impressions.record import (
    FLAG_FIELDS,
    HEAD_PREFIX,
    REQUEST_FIELDS,
    Impression,
    LoggedFeature,
    Vocabulary,
)


def record_batch(records: Sequence[Impression], replica: str) -> pa.RecordBatch:
    """Records of one layout -> a batch with layout.schema: sum of the records' top-k rows.

    Every column is gathered the same way: the records' (B,) columns concatenated, then one `take` of
    the logged rows (`rows`: each record's top-k order, offset by the candidates before it)."""
    layout = records[0].layout
    sizes = [len(r.item_ids) for r in records]
    ks = np.fromiter((len(r.order) for r in records), dtype=np.int64, count=len(records))
    offsets = np.cumsum(sizes) - sizes
    rows = np.concatenate([r.order + offset for r, offset in zip(records, offsets.tolist(), strict=True)])
    repeat = np.repeat(np.arange(len(records), dtype=np.int32), ks)  # row -> its record
    firsts = np.cumsum(ks) - ks
    out: dict[str, pa.Array] = _request_columns(records, repeat, replica)
    ids = _coded(layout.item_ids, records, "item_id", lambda r: r.item_ids, offsets, rows)
    out["item_id"] = ids if ids is not None else _strings(_flat([r.item_ids for r in records], sizes)).take(
        pa.array(rows))
    out["position"] = pa.array((np.arange(len(rows)) - np.repeat(firsts, ks) + 1).astype(np.int32))
    out["score"] = pa.array(np.concatenate([r.scores for r in records]).astype(np.float64, copy=False)[rows])
    for task in layout.tasks:
        head = np.concatenate([r.heads[task] for r in records]).astype(np.float64, copy=False)
        out[f"{HEAD_PREFIX}{task}"] = pa.array(head[rows])
    defaulted, clipped = [], []
    for f in layout.features:
        columns = [r.columns.get(f.name) for r in records]
        values, missing, outside = (_shared_feature(f, columns, repeat) if f.shared
                                    else _item_feature(f, records, columns, sizes, offsets, rows))
        out[f.column] = values
        defaulted.append(missing)
        clipped.append(outside)
    if layout.features:
        names = [f.name for f in layout.features]
        out[FLAG_FIELDS[0]] = _names_per_row(np.stack(defaulted, axis=1), names)
        out[FLAG_FIELDS[1]] = _names_per_row(np.stack(clipped, axis=1), names)
    return pa.RecordBatch.from_arrays([out[name] for name in layout.schema.names], schema=layout.schema)


def _request_columns(records: Sequence[Impression], repeat: np.ndarray, replica: str) -> dict[str, pa.Array]:
    """One value per record, repeated over its rows: numbers by indexing, strings as dictionary arrays."""
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
            out[name] = pa.array(np.array(numbers[name], dtype=np.int64)[repeat], type=kind)
        else:
            out[name] = _repeated(pa.array(strings[name], type=pa.string()), repeat)
    return out


def _shared_feature(f: LoggedFeature, columns: list[Any], repeat: np.ndarray
                    ) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """A user or context feature, one value per record (request_columns' SharedValue), repeated over its
    rows: a dictionary array for a categorical one, indexed for a numeric one."""
    once = [c.value if isinstance(c, SharedValue) else None for c in columns]
    if f.categorical:
        strings = _strings(once)
        missing = strings.is_null().to_numpy(zero_copy_only=False)[repeat]
        return _repeated(strings, repeat), missing, np.zeros(len(repeat), dtype=bool)
    return _numeric(f, np.array(once, dtype=np.float64)[repeat])  # None -> NaN


def _item_feature(f: LoggedFeature, records: Sequence[Impression], columns: list[Any], sizes: list[int],
                  offsets: np.ndarray, rows: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(rows,) values, missing mask, clipped mask of one item feature over the batch."""
    if f.categorical:
        values = _coded(f.vocab, records, f.name, lambda r: r.columns.get(f.name), offsets, rows)
        if values is None:
            values = _strings(_flat(columns, sizes)).take(pa.array(rows))
        return values, values.is_null().to_numpy(zero_copy_only=False), np.zeros(len(values), dtype=bool)
    return _numeric(f, np.concatenate([_numbers(c, n) for c, n in zip(columns, sizes, strict=True)])[rows])


def _numeric(f: LoggedFeature, x: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    missing = np.isnan(x)
    outside = (x < f.clip[0]) | (x > f.clip[1]) if f.clip is not None else np.zeros(len(x), dtype=bool)
    return pa.array(x, from_pandas=True), missing, outside  # from_pandas: NaN -> null


def _coded(vocab: Vocabulary | None, records: Sequence[Impression], name: str,
           raw: Callable[[Impression], Sequence[Any] | None], offsets: np.ndarray, rows: np.ndarray) -> pa.Array | None:
    """(rows,) strings of a categorical item column from the codes the model encoded it to: the known
    values taken from the vocabulary, the unknown or missing ones (code 0) converted from `raw(record)`,
    the record's own values. None when a record carries no codes for it (the caller converts them all)."""
    codes = [r.codes.get(name) for r in records]
    if vocab is None or any(c is None for c in codes):
        return None
    code = np.concatenate(codes)[rows]
    values = vocab.by_code.take(pa.array(code))
    unknown = code == 0
    if unknown.any():
        flat = rows[unknown]
        record = np.searchsorted(offsets, flat, side="right") - 1
        given = []
        for r, i in zip(record.tolist(), (flat - offsets[record]).tolist(), strict=True):
            column = raw(records[r])
            given.append(None if column is None else column[i])
        values = pc.replace_with_mask(values, pa.array(unknown), _strings(given))
    return values


def _repeated(once: pa.Array, repeat: np.ndarray) -> pa.DictionaryArray:
    """(R,) strings -> (rows,) dictionary array, row i = once[repeat[i]], with `once` as the dictionary
    itself (no hashing). A null is a null index: Parquet cannot write a null inside the dictionary."""
    if not once.null_count:
        return pa.DictionaryArray.from_arrays(repeat, once, safe=False)  # repeat < len(once) by construction
    nulls = once.is_null().to_numpy(zero_copy_only=False)
    return pa.DictionaryArray.from_arrays(pa.array(repeat, mask=nulls[repeat]), once.fill_null(""), safe=False)


def _flat(columns: list[Any], sizes: list[int]) -> list[Any]:
    """The records' (B,) columns of one feature, concatenated (a missing column as None values)."""
    out: list[Any] = []
    for column, n in zip(columns, sizes, strict=True):
        if column is None:
            out.extend([None] * n)
        elif isinstance(column, SharedValue):
            out.extend([column.value] * n)
        elif isinstance(column, np.ndarray):
            out.extend(column.tolist())
        else:
            out.extend(column)
    return out


def _strings(values: list[Any]) -> pa.Array:
    """Values -> strings as vocabularies match them; the common all-strings case converts in C."""
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([category_key(v) for v in values], type=pa.string())


def _numbers(column: Any, n: int) -> np.ndarray:
    """(n,) float64 of one record's numeric column: the server's encoder left a float array (NaN =
    missing; service/live/model.py), the feature store may fill a list."""
    if column is None:
        return np.full(n, np.nan)
    if isinstance(column, SharedValue):
        return np.full(n, np.nan if column.value is None else float(column.value))
    return np.asarray(column, dtype=np.float64)  # a list: None -> NaN


def _names_per_row(mask: np.ndarray, names: list[str]) -> pa.Array:
    """(rows, F) bool -> list<string> per row: the names of its True columns (all numpy, no row loop)."""
    offsets = np.zeros(len(mask) + 1, dtype=np.int32)
    if not mask.any():  # the common case: nothing defaulted or clipped in the whole batch
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array([], type=pa.string()))
    rows, cols = np.nonzero(mask)
    offsets[1:] = np.cumsum(np.bincount(rows, minlength=len(mask)))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(names, type=pa.string()).take(pa.array(cols)))
