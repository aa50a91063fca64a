"""The lookup step of a request: fill the features the request left out from the feature store.

    parse  ->  fill (this module)  ->  encode  ->  session.run  ->  ...

For each entity the model looks up (manifest.lookups), the ids go to the store in one call: every
candidate's `item_id`, the user's `user_id`. A value in the request overrides the stored one; a
value found nowhere stays missing and gets the model's default when encoded. The response's
`lookup` field says, per entity, how many ids were not found, and whether the store failed.

On a store failure (Redis down or slow): fail-open (the default) scores with the request's own
values and the defaults, and says so in the response; fail-closed answers 503.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from service.contract.bundle import Manifest
from service.contract.lookups import ENTITY_KEY, feature_kinds
from service.contract.request import RankRequest
from service.errors import FeatureStoreUnavailable
from service.feature_store.metrics import FeatureStoreMetrics
from service.feature_store.redis_store import StoreUnavailable
from service.feature_store.snapshot import Column, Found


class FeatureSource(Protocol):
    """What the lookup step needs from a store (EmbeddedStore, RedisStore)."""

    kind: str

    def lookup(self, entity: str, ids: Sequence[Any], kinds: dict[str, str]) -> Found:
        """Raw values of `kinds`' features for B ids; raises StoreUnavailable on an outage."""
        ...


@dataclass(frozen=True)
class Filled:
    """A request's feature values after the lookup.

    user: the request's user features with stored values for the missing ones.
    item_columns: looked-up item feature -> (B,) values, the request's own value first.
    summary: the response's `lookup` field, e.g. {"item": {"not_found": 3}, "user": {"not_found": 0}}.
    """

    user: dict[str, Any]
    item_columns: dict[str, Column] = field(default_factory=dict)
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)


class FeatureLookup:
    """Fills missing item and user features from a store.

    Args:
        store: where features are found by id.
        metrics: lookups, misses, errors per entity.
        fail_closed: on a store failure, answer 503 instead of scoring with defaults.
    """

    def __init__(self, store: FeatureSource, metrics: FeatureStoreMetrics, fail_closed: bool = False) -> None:
        self.store = store
        self.metrics = metrics
        self.fail_closed = fail_closed

    def fill(self, manifest: Manifest, request: RankRequest) -> Filled | None:
        """None when the model looks nothing up (the request is encoded as it is)."""
        if not manifest.lookups:
            return None
        filled = Filled(user=request.user)
        item_kinds = feature_kinds(manifest.lookups, manifest.features, "item")
        if item_kinds:
            filled.item_columns.update(self._fill_items(request.items, item_kinds, filled.summary))
        user_kinds = feature_kinds(manifest.lookups, manifest.features, "user")
        if user_kinds:
            user_id = request.user.get(ENTITY_KEY["user"])
            found = self._find("user", [user_id] if user_id is not None else [], user_kinds, filled.summary)
            if user_id is None:  # no id to look up: the user's features come from the request alone
                filled.summary["user"]["not_found"] = 1
            filled = Filled(merge_user(request.user, found), filled.item_columns, filled.summary)
        return filled

    def _fill_items(self, items: dict[str, list[Any]], kinds: dict[str, str], summary: dict) -> dict[str, Column]:
        """Looked-up item features, one column each; only candidates missing one of them are looked up.

        Args:
            items: the request's columns (RankRequest.items), item_id included.
        """
        key = ENTITY_KEY["item"]
        n = len(items[key])
        own = {name: items[name] for name in kinds}  # the parser gives every item feature a column
        missing = [col.count(None) for col in own.values()]
        if not any(missing):  # everything inline: no store call at all
            summary["item"] = {"not_found": 0}
            return own
        if n in missing:  # a feature left out everywhere (an id-only request): look up every candidate
            rows = None
        else:
            rows = np.flatnonzero(np.any([[v is None for v in col] for col in own.values()], axis=0))
        ids = items[key] if rows is None else [items[key][i] for i in rows.tolist()]
        found = self._find("item", ids, kinds, summary)
        return {name: merge_column(own[name], found.columns[name], rows) for name in kinds}

    def _find(self, entity: str, ids: list[Any], kinds: dict[str, str], summary: dict) -> Found:
        t0 = time.perf_counter()
        try:
            found = self.store.lookup(entity, ids, kinds)
            summary[entity] = {"not_found": found.not_found}
        except StoreUnavailable as e:
            self.metrics.errors.labels(entity=entity).inc()
            if self.fail_closed:
                raise FeatureStoreUnavailable(f"feature store unavailable for {entity} features: {e}") from e
            found = Found.missing(len(ids), kinds)
            summary[entity] = {"not_found": len(ids), "store_error": True}
        self.metrics.duration.labels(entity=entity, store=self.store.kind).observe(time.perf_counter() - t0)
        self.metrics.lookups.labels(entity=entity).inc(len(ids))
        self.metrics.misses.labels(entity=entity).inc(summary[entity]["not_found"])
        return found


def merge_column(own: list[Any], stored: Column, rows: np.ndarray | None) -> Column:
    """Each candidate's own value where it has one, else the stored value.

    Args:
        own: (B,) the request's values, None where missing.
        stored: the store's values for every candidate (rows None) or for `rows` only.
        rows: which candidates were looked up, or None for all of them.
    """
    missing = own.count(None)
    if missing == 0:
        return own
    if rows is None:
        if missing == len(own):
            return stored  # id-only: the stored column as it is (no Python loop)
        return [o if o is not None else s for o, s in zip(own, _as_list(stored), strict=True)]
    out = list(own)
    for i, s in zip(rows.tolist(), _as_list(stored), strict=True):
        if out[i] is None:
            out[i] = s
    return out


def merge_user(user: dict[str, Any], found: Found) -> dict[str, Any]:
    """The request's user features plus stored values for the ones it left out (or sent as null)."""
    merged = dict(user)
    for name, values in found.columns.items():
        if merged.get(name) is None and len(values):
            value = values[0]
            if value is not None and not (isinstance(value, float) and np.isnan(value)):
                merged[name] = value
    return merged


def _as_list(values: Column) -> list:
    return values.tolist() if isinstance(values, np.ndarray) else values
