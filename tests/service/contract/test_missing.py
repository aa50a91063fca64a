"""No feature is defaulted silently (issue 9, item 2).

The request's `item_id` feeds the model's item-id feature (the manifest names it), every defaulted
value is counted per feature, and a feature marked `on_missing: error` is a 422 naming the field.
"""

from __future__ import annotations

import orjson
import pytest

from service.contract.features import CategoricalEncoder, FeatureEncoders, NumericEncoder
from service.contract.missing import defaulted_features
from service.contract.request import RequestParser
from service.errors import InvalidRequest


def movie_features(on_missing: str = "default") -> FeatureEncoders:
    """A model whose item-id feature is `movie_id` (the spec said `data.item_id: movie_id`)."""
    return FeatureEncoders(
        categorical=[CategoricalEncoder(name="user_id", source="user", vocab=["u1"], on_missing=on_missing),
                     CategoricalEncoder(name="movie_id", source="item", vocab=["50", "51"])],
        numeric=[NumericEncoder(name="year", source="item", mean=1990.0, std=10.0, fill_value=1990.0,
                                on_missing=on_missing)],
        item_id_feature="movie_id",
    )


def parse(features: FeatureEncoders, body: dict):
    return RequestParser(features, max_candidates=10).parse(orjson.dumps(body))


def candidates(request) -> list[dict]:
    """The parsed request's columns as one dict per candidate (None = missing)."""
    return [dict(zip(request.items, row, strict=True)) for row in zip(*request.items.values(), strict=True)]


def test_request_item_id_feeds_the_models_item_id_feature() -> None:
    f = movie_features()
    req = parse(f, {"user": {"user_id": "u1"}, "candidates": [{"item_id": "50"}, {"item_id": 51}, {"item_id": "new"}]})
    inputs = f.encode_columns(f.request_columns(req.user, req.context, req.items, 3), 3)
    assert inputs["categorical"][:, 1].tolist() == [1, 2, 0]  # 50 and 51 are known movies, "new" is not


def test_an_item_id_feature_that_contradicts_item_id_is_422() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(movie_features(), {"user": {}, "candidates": [{"item_id": "50"}, {"item_id": "51", "movie_id": "50"}]})
    assert err.value.problems[0].field == "candidates[1].movie_id"
    assert "item_id" in err.value.message


def test_defaulted_values_are_counted_per_feature() -> None:
    f = movie_features()
    req = parse(f, {"user": {}, "candidates": [{"item_id": "50", "year": 1995}, {"item_id": "51"},
                                               {"item_id": "52", "year": None}]})
    assert defaulted_features(f, req.user, req.context, candidates(req)) == {"user_id": 1, "year": 2}


@pytest.mark.parametrize(("body", "field"), [
    ({"user": {}, "candidates": [{"item_id": "50", "year": 1995}]}, "user.user_id"),
    ({"user": {"user_id": "u1"}, "candidates": [{"item_id": "50", "year": 1995}, {"item_id": "51"}]},
     "candidates[1].year"),
    ({"user": {"user_id": "u1"}, "candidates": [{"item_id": "50", "year": None}]}, "candidates[0].year"),
])
def test_on_missing_error_is_a_422_naming_the_field(body: dict, field: str) -> None:
    f = movie_features(on_missing="error")
    req = parse(f, body)
    with pytest.raises(InvalidRequest) as err:
        defaulted_features(f, req.user, req.context, candidates(req))
    assert err.value.problems[0].field == field
    assert "on_missing" in err.value.message
