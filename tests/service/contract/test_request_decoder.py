"""The msgspec pass accepts a body only when the pydantic schema accepts it, with the same values.

Bodies are generated around one model's features: right and wrong types, NaN and out-of-range
literals, lax values pydantic coerces, unknown fields, empty and over-long lists and strings.
"""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.contract.features import CategoricalEncoder, FeatureEncoders, NumericEncoder
from service.contract.request import RankRequest, RequestParser
from service.contract.request_decoder import FastDecoder
from service.errors import InvalidRequest, PayloadTooLarge

MAX_CANDIDATES = 4


def features(item_numeric: str = "item-age days") -> FeatureEncoders:
    return FeatureEncoders(
        categorical=[CategoricalEncoder(name="user_id", source="user", vocab=["u1", "7"]),
                     CategoricalEncoder(name="device", source="context", vocab=["tv"]),
                     CategoricalEncoder(name="item_id", source="item", vocab=["i1", "2"]),
                     CategoricalEncoder(name="item_category", source="item", vocab=["c1", "true"])],
        numeric=[NumericEncoder(name="user_activity", source="user"), NumericEncoder(name="hour", source="context"),
                 NumericEncoder(name="item_popularity", source="item"), NumericEncoder(name=item_numeric, source="item")],
    )


PARSER = RequestParser(features(), MAX_CANDIDATES, user_key="user_id")

# Mostly valid values (three branches in four), so both outcomes occur often; then every kind of wrong one.
wrong = st.one_of(st.none(), st.booleans(), st.integers(2**63, 2**70), st.sampled_from([float("nan"), float("inf"), ""]),
                  st.text(max_size=3), st.lists(st.integers(), max_size=2), st.dictionaries(st.just("a"), st.none()))
finite = st.floats(allow_nan=False, allow_infinity=False)
numeric = st.one_of(st.none(), st.integers(-10**6, 10**6), finite, wrong)
categorical = st.one_of(st.text(max_size=3), st.integers(-3, 3), st.one_of(finite, st.booleans(), st.none()), wrong)
item_id = st.one_of(st.text(min_size=1, max_size=3), st.integers(-10**9, 10**9), st.integers(0, 3), wrong)
candidate = st.fixed_dictionaries({"item_id": item_id}, optional={
    "item_category": categorical, "item_popularity": numeric, "item-age days": numeric, "note": wrong})
candidates = st.one_of(st.lists(candidate, min_size=1, max_size=MAX_CANDIDATES),
                       st.lists(candidate, min_size=1, max_size=MAX_CANDIDATES),
                       st.lists(st.one_of(candidate, st.dictionaries(st.just("item_popularity"), numeric)),
                                max_size=MAX_CANDIDATES + 1), wrong)
user = st.one_of(st.fixed_dictionaries({}, optional={"user_id": categorical, "user_activity": numeric, "extra": wrong}),
                 st.fixed_dictionaries({}, optional={"user_id": item_id}), wrong)
context = st.one_of(st.fixed_dictionaries({}, optional={"device": categorical, "hour": numeric, "extra": wrong}), wrong)
flag = st.one_of(st.booleans(), st.booleans(), st.booleans(), wrong)
top_level = st.fixed_dictionaries({"user": user, "candidates": candidates}, optional={
    "context": context, "profile": st.one_of(st.text(min_size=1, max_size=64), st.none(), st.text(max_size=70), wrong),
    "top_k": st.one_of(st.integers(1, 9), st.none(), st.sampled_from([0, "2", 2.0, 2.5]), wrong),
    "request_id": st.one_of(st.text(min_size=1, max_size=128), st.none(), st.text(min_size=120, max_size=140), wrong),
    "explain": flag, "scores": flag, "candidate": wrong})


def reference(body: bytes) -> RankRequest | None:
    try:
        return PARSER.parse_reference(body)
    except (InvalidRequest, PayloadTooLarge):
        return None


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(top_level, st.booleans())
def test_the_fast_pass_accepts_only_what_pydantic_accepts_with_the_same_values(body: dict, huge: bool) -> None:
    raw = json.dumps(body).encode()  # NaN and Infinity literals included, as a client could send them
    if huge:
        raw = raw.replace(b"Infinity", b"1e999")
    fast = PARSER._fast.decode(raw)
    if fast is not None:
        ref = reference(raw)
        assert ref is not None, raw
        assert repr(RankRequest(**fast)) == repr(ref)  # repr: 3 and 3.0 differ


@pytest.mark.parametrize("body", [
    {"user": {"user_id": "u1", "user_activity": 3, "extra": [1]}, "context": {"device": "tv", "hour": 20},
     "candidates": [{"item_id": "i1", "item_popularity": 2, "note": {}}, {"item_id": 2, "item_category": True,
                                                                         "item-age days": 1.5}],
     "top_k": 1, "profile": "p", "request_id": "r", "explain": True, "scores": False},
    {"user": {}, "candidates": [{"item_id": "i1", "item_category": 3.0}]},
])
def test_valid_bodies_take_the_fast_pass(body: dict) -> None:
    raw = orjson.dumps(body)
    fast = PARSER._fast.decode(raw)
    assert fast is not None and repr(RankRequest(**fast)) == repr(reference(raw))
    assert fast["items"]["item-age days"] == ([None, 1.5] if len(body["candidates"]) == 2 else [None])


@pytest.mark.parametrize(("raw", "field"), [
    (b'{"user": {}, "candidates": [{"item_id": "a", "item_popularity": "3"}]}', "candidates[0].item_popularity"),
    (b'{"user": {}, "candidates": [{"item_id": ""}]}', "candidates[0].item_id"),
    (b'{"user": {"user_id": [1]}, "candidates": [{"item_id": "a"}]}', "user.user_id"),
    (b'{"user": {}, "candidates": [{"item_id": "a"}], "top_k": 0}', "top_k"),
])
def test_what_the_fast_pass_refuses_gets_pydantics_field_named_error(raw: bytes, field: str) -> None:
    assert PARSER._fast.decode(raw) is None
    with pytest.raises(InvalidRequest) as info:
        PARSER.parse(raw)
    assert info.value.problems[0].field == field


def test_lax_values_pydantic_accepts_still_parse() -> None:
    req = PARSER.parse(b'{"user": {}, "candidates": [{"item_id": "a"}], "top_k": "2"}')
    assert req.top_k == 2 and req.item_ids == ["a"]


def test_a_feature_name_msgspec_cannot_rename_to_leaves_pydantic_alone() -> None:
    assert not FastDecoder.supports(features('age "days"'))
    parser = RequestParser(features('age "days"'), MAX_CANDIDATES)
    req = parser.parse(b'{"user": {}, "candidates": [{"item_id": "a", "age \\"days\\"": 4}]}')
    assert req.items['age "days"'] == [4.0]
