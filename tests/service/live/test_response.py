"""The response of one request: top-k order and the JSON built for the returned items only."""

import numpy as np
import orjson
import pytest

from service.live.response import response_body, top_k_order

TASKS = ("click", "watch_time")


def heads_of(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {t: rng.random(n).astype(np.float32) for t in TASKS}


@pytest.mark.parametrize("seed", range(20))
def test_top_k_equals_a_stable_full_sort_cut_at_k_even_with_ties_at_the_cut(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, size=200).astype(np.float32)  # many ties, some at every cut
    full = np.argsort(-scores, kind="stable")
    for k in (1, 3, 40, 199, 200, 500, None):
        assert top_k_order(scores, k).tolist() == full[:k].tolist()


def test_response_lists_the_order_with_each_items_scores():
    ids = [f"i{k}" for k in range(5)]
    heads = heads_of(5)
    scores = heads["click"] * 2.0
    order = top_k_order(scores, None)
    out = orjson.loads(response_body({"request_id": "r"}, ids, scores, heads, order))
    assert out["request_id"] == "r"
    assert [i["item_id"] for i in out["items"]] == [f"i{k}" for k in order.tolist()]
    assert [i["rank"] for i in out["items"]] == [1, 2, 3, 4, 5]
    for item, k in zip(out["items"], order.tolist(), strict=True):
        assert item["score"] == float(scores[k])
        assert item["scores"] == {t: float(heads[t][k]) for t in TASKS}
        assert "contributions" not in item


def test_scores_off_leaves_them_out_and_keeps_order_and_contributions():
    ids = list(range(6))
    heads = heads_of(6, seed=1)
    scores = heads["click"] + heads["watch_time"]
    order = top_k_order(scores, None)
    with_all = orjson.loads(response_body({}, ids, scores, heads, order, heads))
    without = orjson.loads(response_body({}, ids, scores, heads, order, heads, with_scores=False))
    assert all("scores" not in i for i in without["items"])
    assert [(i["item_id"], i["score"], i["contributions"]) for i in without["items"]] == [
        (i["item_id"], i["score"], i["contributions"]) for i in with_all["items"]]


def test_only_the_returned_items_are_read():
    """top_k builds k items: candidates past the cut are never touched (these have no item_id at all)."""
    heads = heads_of(1000, seed=2)
    scores = heads["click"]
    order = top_k_order(scores, 3)

    class OnlyPicked(list):
        def __getitem__(self, i):
            assert i in order.tolist(), f"read the id of candidate {i}, which is past the cut"
            return super().__getitem__(i)

    out = orjson.loads(response_body({}, OnlyPicked(range(1000)), scores, heads, order))
    assert [i["item_id"] for i in out["items"]] == order.tolist()


def test_task_names_are_keys_whatever_characters_they_hold():
    names = ("it's", 'a "b"', "c\\n}", "{x}")
    heads = {n: np.full(2, float(k)) for k, n in enumerate(names)}
    out = orjson.loads(response_body({}, [{"item_id": 0}, {"item_id": 1}], np.zeros(2), heads, np.array([1, 0])))
    assert out["items"][0]["scores"] == {n: float(k) for k, n in enumerate(names)}
