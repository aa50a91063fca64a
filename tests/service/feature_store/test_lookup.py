"""The lookup step in the real request path: an id-only request scores like the inlined one,
request values override stored ones, and missing ids fall back to defaults and are counted."""

from __future__ import annotations

import orjson
import pytest

from service.examples import example_request, ids_only
from service.live.pipeline import rank


def scores(ranked) -> dict:
    out = orjson.loads(ranked.body)
    return {item["item_id"]: (item["score"], item["scores"]) for item in out["items"]}


def inline(request: dict, stored_rows: dict) -> dict:
    """The id-only request with every stored feature written into it."""
    user = {**stored_rows["user"].get(request["user"]["user_id"], {}), **request["user"]}
    candidates = [{**stored_rows["item"].get(c["item_id"], {}), **c} for c in request["candidates"]]
    return {**request, "user": user, "candidates": candidates}


def test_id_only_request_scores_exactly_like_the_stored_features_inlined(serving, lookup, manifest, stored_rows):
    request = ids_only(example_request(manifest, 200, seed=1))
    request["candidates"] = [c for c in request["candidates"] if c["item_id"] in stored_rows["item"]]
    assert len(request["candidates"]) > 50 and list(request["candidates"][0]) == ["item_id"]
    by_id = rank(serving, orjson.dumps(request), lookup=lookup)
    inlined = rank(serving, orjson.dumps(inline(request, stored_rows)))  # no store at all
    assert scores(by_id) == scores(inlined)  # exactly: same floats, same order
    summary = orjson.loads(by_id.body)["lookup"]
    assert summary == {"item": {"not_found": 0}, "user": {"not_found": 0}}
    # ...and the defaults alone would have scored differently: the store did something.
    assert scores(rank(serving, orjson.dumps(request))) != scores(by_id)


def test_a_request_value_overrides_the_stored_one(serving, lookup, manifest, stored_rows):
    request = ids_only(example_request(manifest, 20, seed=2))
    request["candidates"] = [c for c in request["candidates"] if c["item_id"] in stored_rows["item"]]
    request["candidates"][0]["item_popularity"] = 5000.0  # the store has another value for it
    request["user"]["user_activity"] = 50.0
    first = request["candidates"][0]["item_id"]
    assert stored_rows["item"][first]["item_popularity"] != 5000.0
    expected = inline(request, stored_rows)  # inline() keeps the request's own values over stored ones
    assert expected["candidates"][0]["item_popularity"] == 5000.0 and expected["user"]["user_activity"] == 50.0
    assert scores(rank(serving, orjson.dumps(request), lookup=lookup)) == scores(
        rank(serving, orjson.dumps(expected)))
    without_override = inline({**request, "candidates": [{"item_id": c["item_id"]} for c in request["candidates"]],
                               "user": {"user_id": request["user"]["user_id"]}}, stored_rows)
    assert scores(rank(serving, orjson.dumps(without_override)))[first] != scores(
        rank(serving, orjson.dumps(request), lookup=lookup))[first]


def test_a_missing_id_gets_the_defaults_and_is_counted(serving, lookup, metrics, manifest, stored_rows):
    request = ids_only(example_request(manifest, 10, seed=3))
    request["candidates"] = [c for c in request["candidates"] if c["item_id"] in stored_rows["item"]][:5]
    request["candidates"] += [{"item_id": "never-seen-1"}, {"item_id": "never-seen-2"}]
    request["user"] = {"user_id": "nobody"}
    ranked = rank(serving, orjson.dumps(request), lookup=lookup)
    assert orjson.loads(ranked.body)["lookup"] == {"item": {"not_found": 2}, "user": {"not_found": 1}}
    # The unknown items score exactly as a request with no item features for them.
    inlined = inline(request, stored_rows)
    assert scores(ranked) == scores(rank(serving, orjson.dumps(inlined)))
    assert metrics.lookups.labels(entity="item")._value.get() == 7
    assert metrics.misses.labels(entity="item")._value.get() == 2
    assert metrics.misses.labels(entity="user")._value.get() == 1
    assert metrics.errors.labels(entity="item")._value.get() == 0


def test_partly_given_features_merge_per_candidate(serving, lookup, manifest, stored_rows):
    request = ids_only(example_request(manifest, 30, seed=5))
    request["candidates"] = [c for c in request["candidates"] if c["item_id"] in stored_rows["item"]]
    for i, c in enumerate(request["candidates"]):
        if i % 3 == 0:
            c["item_category"] = "c1"
        if i % 4 == 0:
            c["item_age_days"] = None  # null = missing: the stored value is used
    expected = inline({**request, "candidates": [{k: v for k, v in c.items() if v is not None}
                                                 for c in request["candidates"]]}, stored_rows)
    assert scores(rank(serving, orjson.dumps(request), lookup=lookup)) == scores(
        rank(serving, orjson.dumps(expected)))


def test_request_without_user_id_counts_the_user_as_not_found(serving, lookup, manifest):
    request = ids_only(example_request(manifest, 3, seed=6))
    request["user"] = {}
    out = orjson.loads(rank(serving, orjson.dumps(request), lookup=lookup).body)
    assert out["lookup"]["user"] == {"not_found": 1}


@pytest.mark.parametrize("entity", ["item", "user"])
def test_no_snapshot_published_means_every_id_is_a_counted_miss(serving, metrics, registry, manifest, entity):
    from service.feature_store.embedded import EmbeddedStore
    from service.feature_store.lookup import FeatureLookup

    store = EmbeddedStore(registry.root, registry.model_name, metrics, lambda: manifest)
    assert store.check() == {"item": "unchanged", "user": "unchanged"}
    request = ids_only(example_request(manifest, 4, seed=7))
    out = orjson.loads(rank(serving, orjson.dumps(request), lookup=FeatureLookup(store, metrics)).body)
    assert out["lookup"][entity]["not_found"] == (4 if entity == "item" else 1)


def test_only_candidates_missing_a_feature_are_looked_up(serving, lookup, metrics, manifest, stored_rows):
    request = ids_only(example_request(manifest, 12, seed=9))
    request["candidates"] = [c for c in request["candidates"] if c["item_id"] in stored_rows["item"]][:8]
    full = inline(request, stored_rows)
    out = orjson.loads(rank(serving, orjson.dumps(full), lookup=lookup).body)
    assert out["lookup"]["item"] == {"not_found": 0}
    assert metrics.lookups.labels(entity="item")._value.get() == 0  # everything inline: no store call
    for c in full["candidates"][:2]:
        del c["item_popularity"]
    full["candidates"][2]["item_popularity"] = 77.0  # an override among them
    rank(serving, orjson.dumps(full), lookup=lookup)
    assert metrics.lookups.labels(entity="item")._value.get() == 2
    assert scores(rank(serving, orjson.dumps(full), lookup=lookup)) == scores(
        rank(serving, orjson.dumps(inline(full, stored_rows))))
