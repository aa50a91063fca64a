import numpy as np
import orjson
import pytest

from service.contract.bundle import SessionConfig
from service.errors import InvalidRequest, ModelOutputError
from service.examples import example_request
from service.live.model import load_model
from service.live.pipeline import rank, top_k_order
from service.live.state import Serving
from service.metrics import RankerMetrics
from service.profiles import compile_weights, parse_weights


@pytest.fixture(scope="module")
def serving(bundle_dir):
    model = load_model(bundle_dir, version=3, session_config=SessionConfig(), max_candidates=1000)
    weights = parse_weights("profiles: {default: {click: 1.0, like: 2.0}, r: {rating: 1.0}}", generation=4)
    return Serving(model, compile_weights(weights, model.tasks))


def test_rank_returns_sorted_items_with_formula_scores(serving, manifest):
    body = orjson.dumps(example_request(manifest, 60, seed=4))
    metrics = RankerMetrics()
    ranked = rank(serving, body, metrics)
    out = orjson.loads(ranked.body)
    assert (out["model_version"], out["weights_generation"], out["profile"]) == (3, 4, "default")
    assert ranked.candidates == 60 and ranked.inference_seconds > 0
    for item in out["items"]:
        assert item["score"] == pytest.approx(item["scores"]["click"] + 2.0 * item["scores"]["like"], abs=1e-12)
    assert [i["rank"] for i in out["items"]] == list(range(1, 61))
    assert metrics.candidates._sum.get() == 60


def test_unknown_profile_names_the_known_ones(serving, manifest):
    with pytest.raises(InvalidRequest, match=r"profile: unknown profile 'x'.*\['default', 'r'\]"):
        rank(serving, orjson.dumps(example_request(manifest, 2, profile="x")))


def test_top_k_order_is_stable_for_ties():
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    assert top_k_order(scores, None).tolist() == [1, 2, 4, 3, 0]
    assert top_k_order(scores, 2).tolist() == [1, 2]
    assert top_k_order(scores, 10).tolist() == [1, 2, 4, 3, 0]


def test_same_request_same_answer(serving, manifest):
    body = orjson.dumps(example_request(manifest, 30, seed=8, request_id="r"))
    assert rank(serving, body).body == rank(serving, body).body


def numeric_names(manifest) -> list[str]:
    return [f.name for f in manifest.features.numeric]


def with_every_numeric(body: dict, manifest, value: float) -> dict:
    """`body` with every numeric feature of the model set to `value`, wherever it lives."""
    out = {**body, "user": dict(body["user"]), "context": dict(body["context"]),
           "candidates": [dict(c) for c in body["candidates"]]}
    for f in manifest.features.numeric:
        if f.source == "item":
            for c in out["candidates"]:
                c[f.name] = value
        else:
            out[f.source][f.name] = value
    return out


@pytest.mark.parametrize("value", [1e308, -1e308, 1e30, -1e30])
def test_extreme_numbers_in_every_numeric_feature_give_finite_scores(serving, manifest, value):
    """Issue 9, item 3: `year: 1e308` used to come back as `"score": null` in a 200."""
    body = with_every_numeric(example_request(manifest, 5, seed=5), manifest, value)
    out = orjson.loads(rank(serving, orjson.dumps(body)).body)
    for item in out["items"]:
        assert item["score"] is not None and np.isfinite(item["score"]), item
        assert all(v is not None and np.isfinite(v) for v in item["scores"].values()), item


def test_a_model_that_scores_non_finite_is_an_error_not_a_null(edited_bundle, manifest):
    """A bundle from before clip ranges (none in its manifest): an extreme value must not yield a 200."""
    def drop_clip_ranges(raw: dict) -> None:
        for f in raw["features"]["numeric"]:
            f.pop("clip_min", None)
            f.pop("clip_max", None)

    model = load_model(edited_bundle(drop_clip_ranges), version=1, session_config=SessionConfig(), max_candidates=100)
    weights = parse_weights("profiles: {default: {click: 1.0, rating: 1.0}}", generation=1)
    old = Serving(model, compile_weights(weights, model.tasks))
    body = with_every_numeric(example_request(manifest, 5, seed=5), manifest, 1e308)
    metrics = RankerMetrics()
    with pytest.raises(ModelOutputError, match="non-finite"):
        rank(old, orjson.dumps(body), metrics)
    assert metrics.non_finite_scores._value.get() == 1  # RankerNonFiniteScore's counter


def test_defaulted_features_are_counted_per_feature(serving, manifest):
    body = example_request(manifest, 3, seed=6)
    body["candidates"][0].pop("item_popularity", None)
    body["candidates"][1]["item_popularity"] = None
    body["candidates"][2]["item_popularity"] = 4.0
    body["user"].pop("user_activity", None)
    metrics = RankerMetrics()
    rank(serving, orjson.dumps(body), metrics)
    text = metrics.render().decode()
    assert 'ranker_features_defaulted_total{feature="item_popularity"} 2.0' in text
    assert 'ranker_features_defaulted_total{feature="user_activity"} 1.0' in text


def test_on_missing_error_in_the_manifest_is_a_422_naming_the_field(edited_bundle, manifest):
    def require_popularity(raw: dict) -> None:
        next(f for f in raw["features"]["numeric"] if f["name"] == "item_popularity")["on_missing"] = "error"

    model = load_model(edited_bundle(require_popularity), version=1, session_config=SessionConfig(), max_candidates=100)
    strict = Serving(model, compile_weights(parse_weights("profiles: {default: {click: 1.0}}", 1), model.tasks))
    body = example_request(manifest, 3, seed=7)
    for c in body["candidates"]:
        c["item_popularity"] = 2.0
    del body["candidates"][1]["item_popularity"]
    with pytest.raises(InvalidRequest) as err:
        rank(strict, orjson.dumps(body))
    assert err.value.problems[0].field == "candidates[1].item_popularity"


def test_explain_contributions_add_up_to_the_score(serving, manifest):
    body = orjson.dumps(example_request(manifest, 50, seed=6, explain=True))
    out = orjson.loads(rank(serving, body).body)
    for item in out["items"]:
        parts = item["contributions"]
        assert set(parts) == {"click", "like"}  # the default profile's tasks
        assert parts["like"] == pytest.approx(2.0 * item["scores"]["like"], rel=1e-6)
        assert sum(parts.values()) == pytest.approx(item["score"], rel=1e-12, abs=1e-12)


def test_explain_off_adds_nothing_and_ranks_the_same(serving, manifest):
    plain = orjson.loads(rank(serving, orjson.dumps(example_request(manifest, 40, seed=7, request_id="r"))).body)
    explained = orjson.loads(rank(serving, orjson.dumps(example_request(manifest, 40, seed=7, request_id="r",
                                                                        explain=True))).body)
    assert all("contributions" not in i for i in plain["items"])
    assert [(i["item_id"], i["score"]) for i in plain["items"]] == [(i["item_id"], i["score"])
                                                                    for i in explained["items"]]


def test_explain_must_be_a_boolean(serving, manifest):
    with pytest.raises(InvalidRequest, match="explain"):
        rank(serving, orjson.dumps(example_request(manifest, 2, explain="yes")))


def test_experiment_arm_picks_the_profile_and_is_reported(bundle_dir, manifest):
    model = load_model(bundle_dir, version=1, session_config=SessionConfig(), max_candidates=1000)
    weights = parse_weights("profiles: {default: {click: 1.0}, r: {rating: 1.0}}\n"
                            "experiments: {name: e1, arms: {r: 0.5}}")
    serving = Serving(model, compile_weights(weights, model.tasks))
    seen = {}
    for i in range(40):
        body = example_request(manifest, 5, seed=i)
        body["user"]["user_id"] = f"user-{i}"
        ranked = rank(serving, orjson.dumps(body))
        out = orjson.loads(ranked.body)
        assert (out["arm"], out["profile"]) == (ranked.arm, ranked.profile)
        assert out["profile"] == ("r" if out["arm"] == "r" else "default") and out["arm"] in ("r", "control")
        seen[out["arm"]] = seen.get(out["arm"], 0) + 1
        named = orjson.loads(rank(serving, orjson.dumps({**body, "profile": "r"})).body)
        assert (named["profile"], named["arm"]) == ("r", None)  # an explicit profile bypasses the split
    assert set(seen) == {"r", "control"}


def test_scores_false_leaves_per_task_scores_out_and_ranks_the_same(serving, manifest):
    request = example_request(manifest, 40, seed=9, request_id="r", top_k=7)
    full = orjson.loads(rank(serving, orjson.dumps(request)).body)
    bare = orjson.loads(rank(serving, orjson.dumps({**request, "scores": False})).body)
    assert all("scores" in i for i in full["items"]) and all("scores" not in i for i in bare["items"])
    assert len(bare["items"]) == 7
    assert [(i["item_id"], i["score"]) for i in bare["items"]] == [(i["item_id"], i["score"]) for i in full["items"]]


def test_scores_must_be_a_boolean(serving, manifest):
    with pytest.raises(InvalidRequest, match="scores"):
        rank(serving, orjson.dumps(example_request(manifest, 2, scores="no")))


def test_clipped_values_are_counted_per_feature(serving, manifest):
    body = example_request(manifest, 3, seed=6)
    for f in manifest.features.numeric:  # every value inside its training range, then three outside
        for target in body["candidates"] if f.source == "item" else [body[f.source]]:
            target[f.name] = (f.clip_min + f.clip_max) / 2
    body["candidates"][0]["item_popularity"] = 1e308
    body["candidates"][1]["item_popularity"] = -5.0
    body["user"]["user_activity"] = 1e9
    metrics = RankerMetrics()
    rank(serving, orjson.dumps(body), metrics)
    text = metrics.render().decode()
    assert 'ranker_features_clipped_total{feature="item_popularity"} 2.0' in text
    assert 'ranker_features_clipped_total{feature="user_activity"} 1.0' in text
    assert 'ranker_features_clipped_total{feature="item_age_days"}' not in text
