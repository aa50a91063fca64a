import orjson
import pytest

from service.contract.request import RequestParser, field_path
from service.errors import InvalidRequest, PayloadTooLarge
from service.examples import example_request


@pytest.fixture(scope="module")
def parser(manifest):
    return RequestParser(manifest.features, max_candidates=50)


def body(**overrides) -> bytes:
    base = {"user": {"user_id": "u1", "user_activity": 2.0}, "context": {"device": "tv", "hour": 20},
            "candidates": [{"item_id": "i1", "item_popularity": 3.5}, {"item_id": 7, "item_category": "c1"}]}
    return orjson.dumps({**base, **overrides})


def test_valid_request_keeps_model_fields_and_drops_the_rest(parser):
    req = parser.parse(body(candidates=[{"item_id": "i1", "item_popularity": 3, "note": "x"}], top_k=5, profile="p"))
    assert req.items["item_id"] == ["i1"] and req.items["item_popularity"] == [3.0]
    assert type(req.items["item_popularity"][0]) is float and "note" not in req.items
    assert all(values == [None] for name, values in req.items.items() if name not in ("item_id", "item_popularity"))
    assert (req.top_k, req.profile, req.request_id) == (5, "p", None)
    assert req.context == {"device": "tv", "hour": 20.0}


def test_example_requests_validate(parser, manifest):
    req = parser.parse(orjson.dumps(example_request(manifest, 30, seed=3)))
    assert len(req.item_ids) == 30 and len(set(req.item_ids)) == 30


@pytest.mark.parametrize(("raw", "field", "text"), [
    (b'{"user": {', "body", "malformed JSON"),
    (b"[1, 2]", "body", "object"),
    (b'{"user": {}}', "candidates", "required"),
    (b'{"user": {}, "candidates": []}', "candidates", "at least 1"),
    (b'{"user": {}, "candidates": "abc"}', "candidates", "array"),
    (b'{"candidates": [{"item_id": "a"}]}', "user", "required"),
    (b'{"user": [], "candidates": [{"item_id": "a"}]}', "user", "object"),
    (b'{"user": {}, "candidates": [{"item_id": "a"}, {"item_id": "a"}]}', "candidates[1].item_id", "duplicate"),
    (b'{"user": {}, "candidates": [{"item_popularity": 1}]}', "candidates[0].item_id", "required"),
    (b'{"user": {}, "candidates": [{"item_id": 1.5}]}', "candidates[0].item_id", "string or an integer"),
    (b'{"user": {}, "candidates": [{"item_id": "a", "item_popularity": "3"}]}', "candidates[0].item_popularity",
     "valid number"),
    (b'{"user": {}, "candidates": [{"item_id": "a", "item_popularity": true}]}', "candidates[0].item_popularity",
     "valid number"),
    (b'{"user": {"user_id": {"a": 1}}, "candidates": [{"item_id": "a"}]}', "user.user_id", "string"),
    (b'{"user": {}, "candidates": [{"item_id": "a"}, {"item_id": "b", "item_popularity": NaN}]}',
     "candidates[1].item_popularity", "finite"),
    (b'{"user": {}, "candidates": [{"item_id": "a", "item_age_days": -Infinity}]}', "candidates[0].item_age_days",
     "finite"),
    (b'{"user": {}, "candidates": [{"item_id": "a", "item_age_days": 1e999}]}', "candidates[0].item_age_days",
     "finite"),
    (b'{"user": {}, "context": {"hour": Infinity}, "candidates": [{"item_id": "a"}]}', "context.hour", "finite"),
    (b'{"user": {}, "candidates": [{"item_id": "a"}], "top_k": 0}', "top_k", "greater than"),
    (b'{"user": {}, "candidates": [{"item_id": "a"}], "profile": 3}', "profile", "string"),
    (b'{"user": {}, "candidates": [{"item_id": "a"}], "candidate": []}', "candidate", "Extra"),
])
def test_bad_input_names_the_field(parser, raw, field, text):
    with pytest.raises(InvalidRequest) as info:
        parser.parse(raw)
    assert info.value.problems[0].field == field
    assert text.lower() in info.value.problems[0].message.lower()


def test_too_many_candidates_is_payload_too_large(parser):
    with pytest.raises(PayloadTooLarge) as info:
        parser.parse(body(candidates=[{"item_id": i} for i in range(51)]))
    assert info.value.problems[0].field == "candidates"


def test_unknown_categories_and_missing_features_are_valid(parser):
    req = parser.parse(b'{"user": {"user_id": "never-seen"}, "candidates": [{"item_id": "new-item"}]}')
    assert req.user == {"user_id": "never-seen"} and req.context == {}


def test_field_path():
    assert field_path(("candidates", 3, "item_popularity")) == "candidates[3].item_popularity"
    assert field_path(()) == "body"
