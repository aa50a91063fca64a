"""Features a request leaves out: counted per feature, or refused where the spec said so.

The encoders give a missing value (absent or null) the training default: the OOV row of a
categorical feature, the training median of a numeric one. That is never silent: the server
counts every defaulted value per feature (`ranker_features_defaulted_total{feature}`), and a
feature trained with `on_missing: error` makes the request a 422 naming the field instead.

Run this on the values the encoder will see, i.e. after anything that fills features in (the
item-id feature from `item_id`, a feature-store lookup).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from service.contract.features import FeatureEncoders, missing_values
from service.errors import InvalidRequest


def check_defaulted(features: FeatureEncoders, missing: Mapping[str, int],
                    items: Mapping[str, Any]) -> dict[str, int]:
    """The features with missing values and how many; raises InvalidRequest (422, the first missing
    field named) when one of them was trained with on_missing: error.

    Args:
        missing: feature -> missing values, as `missing_values(features.request_columns(...))` gives:
            a user or context feature counts once per request, an item feature once per candidate.
        items: item feature -> one value per candidate (a list, None = missing; or a float array
            the feature store filled, NaN = missing), to name the first candidate missing a value.
    """
    counts = {name: n for name, n in missing.items() if n}
    for enc in features.all():
        if counts.get(enc.name) and enc.on_missing == "error":
            raise InvalidRequest.at(_first_missing(enc.name, enc.source, items),
                                    "required: the model was trained with on_missing: error for this feature")
    return counts


def defaulted_features(features: FeatureEncoders, user: Mapping[str, Any], context: Mapping[str, Any],
                       candidates: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """`check_defaulted` of one request's values (the server counts them while encoding instead)."""
    columns = features.request_columns(user, context, features.candidate_columns(candidates), len(candidates))
    return check_defaulted(features, missing_values(columns), columns)


def _first_missing(name: str, source: str, items: Mapping[str, Any]) -> str:
    if source != "item":
        return f"{source}.{name}"
    values = items[name]
    i = int(np.flatnonzero(np.isnan(values))[0]) if isinstance(values, np.ndarray) else values.index(None)
    return f"candidates[{i}].{name}"
