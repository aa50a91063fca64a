"""Issue 21, item 5: no body is answered with a 5xx, and every 5xx logs its exception once.

`{"user": [[[[...5000 levels...]]]]}` used to be a 500 with `"error": null` in the access log:
msgspec raised RecursionError, which is not a RankerError, so the route logged no error and
Starlette answered in plain text.
"""

from __future__ import annotations

import json
import logging
import re

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import wait_ready

from service.app import create_app
from service.examples import example_request

DEEP = 5000


def nested(depth: int, kind: str = "list") -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


VALID = b'"candidates": [{"item_id": "a"}]'
DEEP_BODIES = {
    "user": b'{"user": ' + nested(DEEP) + b", " + VALID + b"}",
    "a user field": b'{"user": {"x": ' + nested(DEEP) + b"}, " + VALID + b"}",
    "a user feature": b'{"user": {"user_activity": ' + nested(DEEP, "dict") + b"}, " + VALID + b"}",
    "a context field": b'{"user": {}, "context": {"x": ' + nested(DEEP) + b"}, " + VALID + b"}",
    "a candidate field": b'{"user": {}, "candidates": [{"item_id": "a", "x": ' + nested(DEEP) + b"}]}",
    "a candidate feature": b'{"user": {}, "candidates": [{"item_id": "a", "item_popularity": ' + nested(DEEP) + b"}]}",
    "the candidates": b'{"user": {}, "candidates": ' + nested(DEEP) + b"}",
    "a top-level field": b'{"user": {}, ' + VALID + b', "pad": ' + nested(DEEP, "dict") + b"}",
    "the body": nested(DEEP),
}


@pytest.fixture
def lenient(make_settings):
    """The app in-process, answering a server error as HTTP does (500) instead of raising it into the test."""
    with TestClient(create_app(make_settings()), raise_server_exceptions=False) as c:
        wait_ready(c)
        yield c


@pytest.mark.parametrize("where", list(DEEP_BODIES))
def test_deep_nesting_anywhere_is_a_422_naming_the_problem(lenient, where):
    r = lenient.post("/v1/rank", content=DEEP_BODIES[where])
    assert r.status_code == 422, (r.status_code, r.text[:300])
    error = r.json()["error"]
    assert error["fields"][0]["field"] == "body" and "nested too deeply" in error["message"], error


def test_long_strings_and_huge_arrays_are_a_4xx_or_scored(lenient, manifest):
    base = example_request(manifest, 3, seed=1)
    ok = [
        {**base, "user": {**base["user"], "notes": "x" * 1_500_000}},  # ignored fields, under the body limit
        {**base, "user": {**base["user"], "history": list(range(200_000))}},
        {**base, "context": {**base["context"], "tags": ["t"] * 200_000}},
        {**base, "candidates": [{**c, "blob": "y" * 100_000} for c in base["candidates"]]},
        {**base, "candidates": [{"item_id": "i" * 500_000}]},
        {**base, "user": {**base["user"], "k" * 100_000: 1}},
    ]
    for body in ok:
        r = lenient.post("/v1/rank", content=orjson.dumps(body))
        assert r.status_code == 200, r.text[:300]
    refused = [
        ({**base, "user": {**base["user"], "user_activity": list(range(200_000))}}, 422, "user.user_activity"),
        ({**base, "context": {**base["context"], "device": ["tv"] * 200_000}}, 422, "context.device"),
        ({**base, "candidates": [{"item_id": "a", "item_category": "c" * 10}, {"item_id": ["a"] * 100_000}]}, 422,
         "candidates[1].item_id"),
        ({**base, "request_id": "r" * 1_000_000}, 422, "request_id"),
        ({**base, "profile": "p" * 1_000_000}, 422, "profile"),
        ({**base, "user": {"notes": "x" * 3_000_000}}, 413, "body"),  # over max_body_bytes (2 MiB)
    ]
    for body, status, field in refused:
        r = lenient.post("/v1/rank", content=orjson.dumps(body))
        assert r.status_code == status and r.json()["error"]["fields"][0]["field"] == field, r.text[:300]


# A placeholder that becomes a value nested `n` levels deep once the body is serialized.
DEEP_MARK = re.compile(rb'"@deep(\d+)@"')
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8)
    | st.integers(100, 3000).map(lambda n: f"@deep{n}@"),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
# Names the model reads, names it does not, and the body's own fields, so values land where they are checked.
names = st.sampled_from(["user_id", "user_activity", "device", "hour", "item_id", "item_category",
                         "item_popularity", "candidates", "user", "top_k", "x"]) | st.text(max_size=6)
objects = st.dictionaries(names, json_values, max_size=5)


@st.composite
def malformed_bodies(draw: st.DrawFn) -> bytes:
    """A body of the right shape with random values (some nested deeply) in every slot, then maybe a few bytes
    cut, doubled or changed."""
    body = {"user": draw(objects | json_values), "candidates": draw(st.lists(objects | json_values, max_size=4))}
    for key in draw(st.lists(st.sampled_from(["context", "profile", "top_k", "request_id", "explain", "scores"]),
                             max_size=3, unique=True)):
        body[key] = draw(objects | json_values)
    raw = json.dumps(body).encode()  # big integers, NaN, lone surrogates (escaped) included
    raw = bytearray(DEEP_MARK.sub(lambda m: nested(int(m[1]), "list" if int(m[1]) % 2 else "dict"), raw))
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["cut", "double", "byte"]))
        if op == "cut":
            del raw[i:i + draw(st.integers(1, 8))]
        elif op == "double":
            raw[i:i] = raw[i:i + draw(st.integers(1, 8))]
        else:
            raw[i] = draw(st.integers(0, 255))
    return bytes(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(raw=malformed_bodies())
def test_random_malformed_bodies_never_get_a_5xx(lenient, raw):
    r = lenient.post("/v1/rank", content=raw)
    assert r.status_code in (200, 413, 422), (r.status_code, r.text[:300], raw[:300])
    if r.status_code != 200:
        assert r.json()["error"]["fields"][0]["field"], r.text[:300]


class FailingModel:
    """The real model, except that parsing fails as a bug would: with an exception no code expects."""

    def __init__(self, model) -> None:
        self._model = model

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def parse(self, body: bytes):
        raise ZeroDivisionError("a bug in the ranking path")


def test_an_unexpected_error_is_a_json_500_logged_once_with_its_access_line(lenient, manifest, caplog):
    runtime = lenient.app.state.runtime
    runtime.state.set_model(FailingModel(runtime.state.model))
    caplog.set_level(logging.INFO)
    r = lenient.post("/v1/rank", content=orjson.dumps(example_request(manifest, 3)), headers={"X-Request-ID": "oops"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error", r.text
    assert "ZeroDivisionError" in r.json()["error"]["message"]
    logged = [rec for rec in caplog.records if rec.exc_info]
    assert len(logged) == 1 and logged[0].levelname == "ERROR", [rec.getMessage() for rec in logged]
    assert "a bug in the ranking path" in logging.Formatter().formatException(logged[0].exc_info)
    assert logged[0].request_id == "oops"
    access = next(rec for rec in caplog.records if rec.name == "service.access")
    assert access.status == 500 and "ZeroDivisionError" in access.error and access.request_id == "oops"


def test_a_non_finite_score_500_logs_its_exception_once(make_settings, registry, edited_bundle, manifest, caplog):
    """A bundle from before clip ranges scores 1e308 as inf: a 500 (non_finite_score), and one traceback."""
    def drop_clip_ranges(raw: dict) -> None:
        for f in raw["features"]["numeric"]:
            f.pop("clip_min", None)
            f.pop("clip_max", None)

    registry.publish(edited_bundle(drop_clip_ranges))
    body = example_request(manifest, 3, seed=2)
    for f in manifest.features.numeric:
        for target in body["candidates"] if f.source == "item" else [body[f.source]]:
            target[f.name] = 1e308
    with TestClient(create_app(make_settings())) as c:
        wait_ready(c)
        caplog.set_level(logging.INFO)
        r = c.post("/v1/rank", content=orjson.dumps(body))
    assert r.status_code == 500 and r.json()["error"]["code"] == "non_finite_score", r.text
    logged = [rec for rec in caplog.records if rec.exc_info]
    assert len(logged) == 1 and "non-finite" in logged[0].getMessage(), [rec.getMessage() for rec in logged]
    access = next(rec for rec in caplog.records if rec.name == "service.access")
    assert access.status == 500 and "non-finite" in access.error
