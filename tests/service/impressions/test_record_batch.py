"""record_batch against a row-by-row reference: every column of every logged row, on records that mix
what requests do (top-k or all, ids as ints, missing values, shared values, lists or float arrays)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from service.contract.features import CategoricalEncoder, SharedValue, category_key
from service.impressions.columns import record_batch
from service.impressions.record import Impression, LogLayout, build_layout


def _record(layout: LogLayout, rng: np.random.Generator, i: int, encoders: dict[str, CategoricalEncoder] | None = None
            ) -> Impression:
    """A record as the server makes it; with `encoders` (categorical item feature -> its encoder), values
    are half from the vocabulary and the record carries their codes, as OnnxRankingModel.encode sets them."""
    n = int(rng.integers(1, 9))
    k = int(rng.integers(1, n + 1)) if i % 2 else n  # every other record returns all its candidates
    order = rng.permutation(n)[:k]
    ids: list[Any] = [f"item-{i}-{j}" for j in range(n)] if i % 3 else [10 * i + j for j in range(n)]

    def known(name: str, other: Any) -> Any:
        vocab = encoders[name].vocab if encoders and name in encoders else None
        return vocab[int(rng.integers(len(vocab)))] if vocab and rng.random() < 0.5 else other

    ids = [known("item_id", x) for x in ids]
    columns: dict[str, Any] = {}
    for f in layout.features:
        if f.shared:
            value = None if rng.random() < 0.3 else (f"v{rng.integers(3)}" if f.categorical else float(rng.normal()))
            columns[f.name] = SharedValue(value) if i % 5 else None if rng.random() < 0.5 else SharedValue(value)
        elif f.categorical:
            columns[f.name] = [None if rng.random() < 0.3 else known(f.name, f"c{rng.integers(4)}") for _ in range(n)]
        else:
            lo, hi = f.clip if f.clip is not None else (-1.0, 1.0)
            values = [None if rng.random() < 0.3 else float(rng.uniform(lo - 1, hi + 1)) for _ in range(n)]
            columns[f.name] = np.array(values, dtype=np.float64) if i % 2 else values
    return Impression(
        ts=1_700_000_000.0 + i, request_id=f"r{i}", model_name="m", model_version=3, model_role="current",
        weights_generation=i, profile="default", experiment=None if i % 2 else "exp", arm=None if i % 2 else "b",
        user_key=None if i % 4 == 0 else f"u{i}", item_ids=ids, order=order,
        scores=rng.normal(size=n).astype(np.float32), heads={t: rng.random(n) for t in layout.tasks},
        columns=columns, layout=layout,
        codes={name: enc.encode(ids if name == "item_id" else columns.get(name, [None] * n))
               for name, enc in (encoders or {}).items()})


def _value(f, column: Any, j: int) -> Any:
    raw = column.value if isinstance(column, SharedValue) else None if column is None else column[j]
    if f.categorical:
        return category_key(raw)
    return None if raw is None or math.isnan(raw) else float(raw)


def _reference(records: list[Impression], replica: str) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        for position, j in enumerate(r.order.tolist(), start=1):
            row = {"request_id": r.request_id, "ts": round(r.ts * 1000), "replica": replica, "model_name": r.model_name,
                   "model_version": r.model_version, "model_role": r.model_role,
                   "weights_generation": r.weights_generation, "profile": r.profile, "experiment": r.experiment,
                   "arm": r.arm, "user_key": r.user_key, "item_id": category_key(r.item_ids[j]), "position": position,
                   "score": float(r.scores[j])}
            row |= {f"head_{t}": float(r.heads[t][j]) for t in r.layout.tasks}
            defaulted, clipped = [], []
            for f in r.layout.features:
                row[f.column] = value = _value(f, r.columns.get(f.name), j)
                if value is None:
                    defaulted.append(f.name)
                elif f.clip is not None and not f.clip[0] <= value <= f.clip[1]:
                    clipped.append(f.name)
            if r.layout.features:
                row |= {"defaulted": defaulted, "clipped": clipped}
            rows.append(row)
    return rows


@pytest.mark.parametrize("keep", [None, ()], ids=["all features", "no features"])
def test_every_logged_row_matches_the_reference(manifest, keep) -> None:
    layout = build_layout(manifest, keep)
    assert keep is not None or {f.shared for f in layout.features} == {True, False}  # both kinds exercised
    rng = np.random.default_rng(7)
    records = [_record(layout, rng, i) for i in range(40)]
    batch = record_batch(records, "replica-1")
    assert batch.schema.equals(layout.schema)
    got = batch.to_pylist()
    for row in got:
        row["ts"] = round(row["ts"].timestamp() * 1000)
    assert got == _reference(records, "replica-1")


@pytest.mark.parametrize("mixed", [False, True], ids=["every record coded", "some records without codes"])
def test_columns_taken_by_the_models_codes_match_the_reference(manifest, mixed) -> None:
    """Categorical item columns (ids, item features) named by the codes the model encoded them to: known
    values from the vocabulary, unknown, int and missing ones from the request; a batch where a record
    has no codes converts the values instead. Either way, the reference's rows."""
    layout = build_layout(manifest, None)
    encoders = {e.name: e for e in manifest.features.categorical if e.source == "item"}
    assert {"item_id", *(f.name for f in layout.features if f.categorical and not f.shared)} <= set(encoders)
    rng = np.random.default_rng(11)
    records = [_record(layout, rng, i, None if mixed and i == 5 else encoders) for i in range(40)]
    assert any(int(c.min()) == 0 for r in records for c in r.codes.values())  # unknown values exercised
    assert any(int(c.max()) > 0 for r in records for c in r.codes.values())  # and known ones
    got = record_batch(records, "replica-1").to_pylist()
    for row in got:
        row["ts"] = round(row["ts"].timestamp() * 1000)
    assert got == _reference(records, "replica-1")
