"""Issue 21, item 5: a field the model does not read (a typo such as `age` for `Age`) is found, to be counted."""

from __future__ import annotations

import json

import orjson

from service.contract.features import CategoricalEncoder, FeatureEncoders, NumericEncoder
from service.contract.request import RequestParser
from service.contract.unknown import SCAN_BYTES, UnknownFields, first_candidate_keys
from service.errors import InvalidRequest

FEATURES = FeatureEncoders(
    categorical=[CategoricalEncoder(name="Age", source="user", vocab=["30"]),
                 CategoricalEncoder(name="device", source="context", vocab=["tv"]),
                 CategoricalEncoder(name="item_id", source="item", vocab=["i1"])],
    numeric=[NumericEncoder(name="item_popularity", source="item")])
PARSER = RequestParser(FEATURES, 10, user_key="user_id")


def unknown(body: dict | bytes) -> list[str]:
    return PARSER.parse(body if isinstance(body, bytes) else orjson.dumps(body)).unknown


def test_unknown_user_context_and_candidate_fields_are_named_by_where_they_are():
    body = {"user": {"age": 30, "user_id": "u1"}, "context": {"Device": "tv", "device": "tv"},
            "candidates": [{"item_id": "i1", "item_popularty": 3.0}, {"item_id": "i2"}]}
    assert unknown(body) == ["user.age", "context.Device", "candidates.item_popularty"]
    assert unknown({"user": {"Age": 30}, "candidates": [{"item_id": "i1", "item_popularity": 1}]}) == []


def test_both_parse_paths_find_them():
    """`top_k: "2"` sends the body through pydantic; it keeps the user's and context's unknown keys too."""
    body = {"user": {"age": 1}, "context": {"x": [1]}, "candidates": [{"item_id": "i1", "y": None}], "top_k": "2"}
    assert PARSER._fast.decode(orjson.dumps(body)) is None
    assert unknown(body) == ["user.age", "context.x", "candidates.y"]


def test_only_the_first_candidate_is_read():
    body = {"user": {}, "candidates": [{"item_id": "a"}, {"item_id": "b", "typo": 1}]}
    assert unknown(body) == []


def test_the_first_candidate_is_found_in_pretty_printed_json_and_after_a_decoy():
    body = {"user": {"candidates": [{"item_id": 8, "decoy": 1}], "note": '"candidates": [{"item_id": 7}]'},
            "candidates": [{"item_id": 7, "typo": 1}, {"item_id": 8}]}
    raw = json.dumps(body, indent=2).encode()
    assert unknown(raw) == ["user.candidates", "user.note", "candidates.typo"]
    assert first_candidate_keys(raw, "7") is None  # the id must match in type too


def test_a_first_candidate_longer_than_the_scan_is_not_checked():
    long = {"user": {}, "candidates": [{"item_id": "a", "blob": "x" * SCAN_BYTES, "typo": 1}]}
    assert unknown(long) == []
    assert UnknownFields(FEATURES).find(b"{}", {}, {}, "a") == []  # and a body without candidates is fine


def call_at_depth(frames: int, fn):
    return fn() if frames == 0 else call_at_depth(frames - 1, fn)


def test_a_deeply_nested_first_candidate_is_scored_or_refused_never_an_error():
    """msgspec accepts an unread value nested as deep as the stack allows, and the first candidate is read again a
    frame or two deeper: near the limit that second read used to raise RecursionError (a 500)."""
    for depth in range(700, 1000):
        raw = b'{"user": {}, "candidates": [{"item_id": "a", "x": ' + b"[" * depth + b"]" * depth + b"}]}"
        try:
            assert call_at_depth(150, lambda raw=raw: unknown(raw)) in ([], ["candidates.x"])
        except InvalidRequest as e:
            assert "nested too deeply" in e.message
