"""What one ranked response logs, built on the request thread from references only (no copies, no I/O).

An `Impression` holds the request's own arrays and lists: the candidates' ids, the (B,) scores and
heads, the (k,) top-k order and the raw feature columns the encoder read. The writer thread turns a
batch of them into Arrow columns (service/impressions/columns.py); nothing here is per candidate, so
the request pays a few microseconds whatever its size.

The `LogLayout` of a model says which feature columns are kept (RANKER_LOG_FEATURES) and the Arrow
schema of its rows; it is built once per model version and shared by its records.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from service.contract.bundle import Manifest
from service.contract.features import CategoricalEncoder

HEAD_PREFIX = "head_"
# A value shared by a record's rows (request fields, user and context features) is held as a dictionary
# array: one string per record and an int32 index per row, no string copied per row. Parquet files
# are written without the Arrow schema, so readers see plain strings (dictionary-encoded pages).
SHARED_STRING = pa.dictionary(pa.int32(), pa.string())
# Columns every row has; a feature with one of these names is logged as `feature_<name>` (but the
# item-id feature named item_id, which is the item_id column itself).
REQUEST_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("request_id", SHARED_STRING), ("ts", pa.timestamp("ms", tz="UTC")), ("replica", SHARED_STRING),
    ("model_name", SHARED_STRING), ("model_version", pa.int64()), ("model_role", SHARED_STRING),
    ("weights_generation", pa.int64()),
    ("profile", SHARED_STRING), ("experiment", SHARED_STRING), ("arm", SHARED_STRING), ("user_key", SHARED_STRING),
)
ITEM_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("item_id", pa.string()), ("position", pa.int32()), ("score", pa.float64()),
)
FLAG_FIELDS = ("defaulted", "clipped")  # list<string>: the row's logged features the model defaulted / clipped
RESERVED = {name for name, _ in REQUEST_FIELDS + ITEM_FIELDS} | set(FLAG_FIELDS)
_SCALE = float(2**64)


class Vocabulary:
    """A categorical feature's vocabulary as Arrow strings in embedding-row order, row 0 (unknown or
    missing) null: an encoded column `take`s its known values from it in C. Built on first use, on the
    writer thread, once per model version."""

    def __init__(self, values: Sequence[str]) -> None:
        self.values = values

    @cached_property
    def by_code(self) -> pa.Array:
        return pa.array([None, *self.values], type=pa.string())


@dataclass(frozen=True)
class LoggedFeature:
    """One feature column of the log: its name in the model and in the file, and its clip range."""

    name: str
    column: str
    categorical: bool
    shared: bool  # a user or context feature: one value per request
    clip: tuple[float, float] | None  # numeric features: the training range the encoder clips to
    vocab: Vocabulary | None = field(default=None, compare=False)  # categorical item features

    @property
    def arrow_type(self) -> pa.DataType:
        if not self.categorical:
            return pa.float64()
        return SHARED_STRING if self.shared else pa.string()


@dataclass(frozen=True)
class LogLayout:
    """The columns one model's rows have; records of equal layouts share a segment."""

    tasks: tuple[str, ...]
    features: tuple[LoggedFeature, ...]
    schema: pa.Schema
    item_ids: Vocabulary | None = field(default=None, compare=False)  # the model's item_id feature, if any


def build_layout(manifest: Manifest, keep: Sequence[str] | None) -> LogLayout:
    """The log layout of a model. keep: feature names to log (None = all, () = none); unknown names are
    skipped (RANKER_LOG_FEATURES is one setting for every model version a server may load)."""
    features = []
    for enc in manifest.features.all():
        if (keep is not None and enc.name not in keep) or enc.name == "item_id":  # item_id is its own column
            continue
        column = f"feature_{enc.name}" if enc.name in RESERVED or enc.name.startswith(HEAD_PREFIX) else enc.name
        clip = None if isinstance(enc, CategoricalEncoder) or enc.clip_min is None else (enc.clip_min, enc.clip_max)
        categorical, shared = isinstance(enc, CategoricalEncoder), enc.source != "item"
        vocab = Vocabulary(enc.vocab) if categorical and not shared else None
        features.append(LoggedFeature(enc.name, column, categorical, shared, clip, vocab))
    ids = next((enc for enc in manifest.features.categorical if enc.name == "item_id" and enc.source == "item"), None)
    tasks = tuple(t.name for t in manifest.tasks)
    fields = [*REQUEST_FIELDS, *ITEM_FIELDS, *((f"{HEAD_PREFIX}{t}", pa.float64()) for t in tasks)]
    fields += [(f.column, f.arrow_type) for f in features]
    if features:
        fields += [(name, pa.list_(pa.string())) for name in FLAG_FIELDS]
    return LogLayout(tasks, tuple(features), pa.schema(fields), Vocabulary(ids.vocab) if ids is not None else None)


@dataclass(frozen=True, slots=True)
class Impression:
    """One ranked response, by reference. Arrays are (B,) over the request's candidates, `order` (k,)
    the returned ones best first; `columns` maps feature name -> the encoder's input (a list, a float
    array the feature store filled with NaN = missing, or one shared value), `codes` categorical item
    feature -> what it encoded to (RankRequest.codes)."""

    ts: float  # seconds since the epoch
    request_id: str
    model_name: str
    model_version: int
    model_role: str  # current | canary | shadow (a shadow's rows: the positions it would have given)
    weights_generation: int
    profile: str
    experiment: str | None
    arm: str | None
    user_key: str | None
    item_ids: Sequence[Any]
    order: np.ndarray
    scores: np.ndarray
    heads: Mapping[str, np.ndarray]
    columns: Mapping[str, Any]
    layout: LogLayout
    codes: Mapping[str, np.ndarray] = field(default_factory=dict)


def sampled(request_id: str, rate: float) -> bool:
    """Stable per request id (every replica and retry decides alike): a hash, not a random draw."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE < rate


def now() -> float:
    return time.time()
