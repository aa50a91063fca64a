"""The model's inputs: one row per candidate (`full`), or user/context once per request (`split`).

    full    categorical (B, C) int64, numeric (B, F) float32: every candidate repeats the user and
            context values (bundles of manifest formats 1 and 2)
    split   request_categorical (1, C_u), request_numeric (1, F_u): user and context features, once;
            item_categorical (B, C_i), item_numeric (B, F_i): item features, one row per candidate
            (format 3; a group without features is not an input)

A feature's group is its encoder's `source`; within a group columns keep the manifest's order. The
server encodes a request straight into the split inputs (`encode_split`); offline callers that hold
full-layout rows of many requests score them with `split_rows`, one group of rows per distinct
user/context row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from service.contract.features import CATEGORICAL_INPUT, NUMERIC_INPUT, FeatureEncoders, encode_column

Layout = Literal["full", "split"]
REQUEST_SOURCES = ("user", "context")
REQUEST_CATEGORICAL, REQUEST_NUMERIC = "request_categorical", "request_numeric"
ITEM_CATEGORICAL, ITEM_NUMERIC = "item_categorical", "item_numeric"


@dataclass(frozen=True)
class SplitColumns:
    """Which columns of the full inputs belong to which split input (indices into categorical / numeric)."""

    request_cat: list[int]
    request_num: list[int]
    item_cat: list[int]
    item_num: list[int]

    def input_names(self) -> list[str]:
        """The split graph's inputs, in order; a group with no column has none."""
        groups = ((REQUEST_CATEGORICAL, self.request_cat), (REQUEST_NUMERIC, self.request_num),
                  (ITEM_CATEGORICAL, self.item_cat), (ITEM_NUMERIC, self.item_num))
        return [name for name, cols in groups if cols]

    def item_input(self) -> str:
        """An item input that exists: its rows are the candidates."""
        return ITEM_CATEGORICAL if self.item_cat else ITEM_NUMERIC

    def splittable(self) -> bool:
        """Both a user/context feature and an item feature: otherwise there is nothing to split."""
        return bool((self.request_cat or self.request_num) and (self.item_cat or self.item_num))


def split_columns(features: FeatureEncoders) -> SplitColumns:
    def cols(encoders: list, request: bool) -> list[int]:
        return [j for j, e in enumerate(encoders) if (e.source in REQUEST_SOURCES) == request]

    return SplitColumns(cols(features.categorical, True), cols(features.numeric, True),
                        cols(features.categorical, False), cols(features.numeric, False))


def item_codes(features: FeatureEncoders, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Categorical item feature -> its (B,) column of the encoded inputs (embedding rows, 0 = unknown or
    missing), as views, from either layout."""
    if CATEGORICAL_INPUT in inputs:
        cat, cols = inputs[CATEGORICAL_INPUT], [j for j, e in enumerate(features.categorical) if e.source == "item"]
        return {features.categorical[j].name: cat[:, j] for j in cols}
    cols = split_columns(features).item_cat
    return {features.categorical[j].name: inputs[ITEM_CATEGORICAL][:, k] for k, j in enumerate(cols)}


def input_names(layout: Layout, features: FeatureEncoders) -> list[str]:
    return [CATEGORICAL_INPUT, NUMERIC_INPUT] if layout == "full" else split_columns(features).input_names()


def encode_split(features: FeatureEncoders, columns: Mapping[str, Any], n_rows: int,
                 clipped: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """One request's values (as `FeatureEncoders.request_columns` gives them) -> the split inputs.

    User and context features are encoded once, into one row; nothing is broadcast. `clipped` is
    counted as `FeatureEncoders.encode_columns` counts it.
    """
    c = split_columns(features)
    groups = ((REQUEST_CATEGORICAL, features.categorical, c.request_cat, np.int64, 1),
              (REQUEST_NUMERIC, features.numeric, c.request_num, np.float32, 1),
              (ITEM_CATEGORICAL, features.categorical, c.item_cat, np.int64, n_rows),
              (ITEM_NUMERIC, features.numeric, c.item_num, np.float32, n_rows))
    out = {}
    for name, encoders, cols, dtype, rows in groups:
        if not cols:
            continue
        array = np.empty((rows, len(cols)), dtype=dtype)
        for k, j in enumerate(cols):
            array[:, k] = encode_column(encoders[j], columns.get(encoders[j].name), rows, clipped)
        out[name] = array
    return out


def split_rows(features: FeatureEncoders, inputs: Mapping[str, np.ndarray]
               ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Full-layout rows of any number of requests -> (row indices, split inputs) per distinct
    user/context row. Rows with equal user and context values share one group, wherever they lie."""
    c = split_columns(features)
    cat, num = inputs[CATEGORICAL_INPUT], inputs[NUMERIC_INPUT]
    request = np.concatenate([cat[:, c.request_cat].view(np.uint64),  # bit patterns: equal values, equal rows
                              num[:, c.request_num].astype(np.float32).view(np.uint32).astype(np.uint64)], axis=1)
    _, group, counts = np.unique(request, axis=0, return_inverse=True, return_counts=True)
    order = np.argsort(group.reshape(-1), kind="stable")
    for rows in np.split(order, np.cumsum(counts)[:-1]):
        first = rows[:1]
        split = {REQUEST_CATEGORICAL: cat[first][:, c.request_cat], REQUEST_NUMERIC: num[first][:, c.request_num],
                 ITEM_CATEGORICAL: cat[rows][:, c.item_cat], ITEM_NUMERIC: num[rows][:, c.item_num]}
        yield rows, {name: np.ascontiguousarray(split[name]) for name in c.input_names()}


def one_request(features: FeatureEncoders, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Full-layout rows as the split inputs of one request: the first row's user and context, every row's
    items (warm-up and benchmarks tile real rows into one request this way)."""
    c = split_columns(features)
    cat, num = inputs[CATEGORICAL_INPUT], inputs[NUMERIC_INPUT]
    split = {REQUEST_CATEGORICAL: cat[:1, c.request_cat], REQUEST_NUMERIC: num[:1, c.request_num],
             ITEM_CATEGORICAL: cat[:, c.item_cat], ITEM_NUMERIC: num[:, c.item_num]}
    return {name: np.ascontiguousarray(split[name]) for name in c.input_names()}
