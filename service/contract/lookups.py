"""Which features a model looks up by id, part of the bundle contract.

A frontend may send ids only. For each entity the manifest lists the features the server then
finds in a feature store, keyed by the entity's id: the candidate's `item_id` for `item`
features, the user's `user_id` for `user` features. Context features always come from the
request. A value in the request overrides the stored one; a value found nowhere gets the
encoder's default (and is counted, never silent).
"""

from __future__ import annotations

from typing import Literal

from service.contract.features import CategoricalEncoder, FeatureEncoders

Entity = Literal["item", "user"]
ENTITIES: tuple[Entity, ...] = ("item", "user")
ENTITY_KEY: dict[str, str] = {"item": "item_id", "user": "user_id"}

Lookups = dict[Entity, list[str]]  # entity -> looked-up feature names, in model order


def check_lookups(lookups: Lookups, features: FeatureEncoders) -> None:
    """Raise ValueError naming the entity and feature that cannot be looked up."""
    by_name = {f.name: f for f in features.all()}
    for entity, names in lookups.items():
        for name in names:
            enc = by_name.get(name)
            if enc is None:
                raise ValueError(f"lookup.{entity}: {name!r} is not a feature of the model")
            if enc.source != entity:
                raise ValueError(f"lookup.{entity}: {name!r} is a {enc.source} feature, not an {entity} feature")
            if name == ENTITY_KEY[entity]:
                raise ValueError(f"lookup.{entity}: {name!r} is the lookup key itself; it comes from the request")
        if len(set(names)) != len(names):
            raise ValueError(f"lookup.{entity}: features repeated in {names}")


def feature_kinds(lookups: Lookups, features: FeatureEncoders, entity: str) -> dict[str, str]:
    """Looked-up feature name -> "categorical" | "numeric", for one entity."""
    by_name = {f.name: f for f in features.all()}
    return {n: "categorical" if isinstance(by_name[n], CategoricalEncoder) else "numeric"
            for n in lookups.get(entity, [])}  # type: ignore[call-overload]
