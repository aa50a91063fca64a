import numpy as np

from service.metrics import HeadScoreHistogram


def test_each_task_gets_its_own_buckets_and_sum() -> None:
    hist = HeadScoreHistogram(buckets=(0.25, 0.5, 1.0))
    heads = {"click": np.array([0.1, 0.25, 0.3, 2.0], dtype=np.float32), "like": np.array([0.9, 0.9, 0.5, 0.6])}
    hist.observe(heads)
    hist.observe({"click": np.array([0.0, 0.0, 0.0, 0.0]), "like": np.array([1.0, 1.0, 1.0, 1.0])})
    family = next(hist.collect())
    got = {s.labels["task"]: {} for s in family.samples}
    for s in family.samples:
        got[s.labels["task"]][(s.name, s.labels.get("le"))] = s.value
    # le is cumulative and inclusive: 0.25 falls in le=0.25
    assert [got["click"][("ranker_head_score_bucket", le)] for le in ("0.25", "0.5", "1.0", "+Inf")] == [6, 7, 7, 8]
    assert [got["like"][("ranker_head_score_bucket", le)] for le in ("0.25", "0.5", "1.0", "+Inf")] == [0, 1, 8, 8]
    assert np.isclose(got["click"][("ranker_head_score_sum", None)], 0.1 + 0.25 + 0.3 + 2.0, atol=1e-6)
    assert np.isclose(got["like"][("ranker_head_score_sum", None)], 2.9 + 4.0)
