import numpy as np
import orjson
import pytest

from service.contract.bundle import SessionConfig
from service.errors import InvalidRequest
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
