"""`tune` on a synthetic scored log whose relevant order is the product of two probability heads."""

import numpy as np
import yaml

from service.contract.bundle import ScoreStats, TaskInfo
from service.profiles import compile_weights, parse_weights
from training.evaluation.ranking import Requests
from training.profiles.logs import ScoredLog, weights_from_mapping
from training.profiles.replay import Metric
from training.profiles.tune import task_transforms, tune, tuned_file

STATS = ScoreStats(mean=0.3, std=0.25, min=0.001, max=1.0)
TASKS = [TaskInfo(name="watch", type="binary", group="engagement", output="watch", score_stats=STATS),
         TaskInfo(name="like", type="binary", group="satisfaction", output="like", score_stats=STATS),
         TaskInfo(name="rating", type="regression", group="satisfaction", output="rating",
                  score_stats=ScoreStats(mean=3.5, std=1.0, min=1.0, max=5.0))]
OBJECTIVES = [Metric.parse("ndcg@10:watch"), Metric.parse("ndcg@10:like")]


def product_log(requests: int = 200, size: int = 20, seed: int = 0) -> ScoredLog:
    """P(watch) and P(like | watch) log-uniform over [1e-3, 1], so a sum of the two (or of any affine map
    of them) orders rows differently from their product; both tasks' gain is the product P(watch and like),
    as a simulator's true probability would be (`--label`). The rating head is one value: it cannot help."""
    rng = np.random.default_rng(seed)
    n = requests * size
    watch, like = (np.exp(rng.uniform(np.log(1e-3), 0, n)).astype(np.float32) for _ in range(2))
    gain = watch.astype(np.float64) * like.astype(np.float64)
    return ScoredLog(requests=Requests.of(np.repeat(np.arange(requests), size)),
                     heads={"watch": watch, "like": like, "rating": np.full(n, 4.0, np.float32)},
                     labels={"watch": gain, "like": gain}, item_ids=None)


def test_only_binary_heads_may_be_given_log():
    choices = task_transforms(TASKS, ("zscore", "identity", "log"))
    assert choices == {"watch": ["zscore", "identity", "log"], "like": ["zscore", "identity", "log"],
                       "rating": ["zscore", "identity"]}
    assert task_transforms(TASKS, ("log",)) == {"watch": ["log"], "like": ["log"]}  # rating is left out


def test_tune_picks_log_when_the_order_is_a_product_of_heads():
    log = product_log()
    current = weights_from_mapping({"default": {"watch": {"weight": 1.0, "transform": "identity"},
                                                "like": {"weight": 1.0, "transform": "identity"}}}, "default", TASKS)
    result = tune(log, current, TASKS, OBJECTIVES, trials=120, seed=0, resamples=50)
    best = max(result.front, key=lambda p: p.search[0])
    assert best.profile["watch"]["transform"] == best.profile["like"]["transform"] == "log", best.profile
    assert all(p.profile.get("rating", {}).get("transform") != "log" for p in result.front)
    chosen = {p.name: p for p in result.chosen}
    point = chosen["ndcg10_watch_vs_default"]
    assert point.profile["watch"]["transform"] == point.profile["like"]["transform"] == "log"
    assert point.deltas[0].mean > 0.05 and point.deltas[0].lo > 0  # held out, paired against `default`
    assert point.holdout[0].mean > 0.97  # the product's order is the oracle's (NDCG 1)
    # The file the tuner writes carries the log profile, and the server's parser accepts it.
    written = yaml.safe_dump(tuned_file(current, result.chosen))
    assert yaml.safe_load(written)["profiles"][point.name] == point.profile
    served = compile_weights(parse_weights(written), TASKS).profiles[point.name]
    searched = weights_from_mapping({"p": point.profile}, "p", TASKS).profiles["p"]
    np.testing.assert_allclose(log.scores(served), log.scores(searched), rtol=1e-12)  # terms in another order
