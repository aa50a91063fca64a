"""Training on 20k demo rows beats trivial baselines on every task (the session `quality_trained` fixture).

Thresholds come from measured runs, with margin. Measured with
    .venv/bin/python tests/training/test_quality.py --seeds 0 1 2 3 4
(20k demo rows per data seed, configs/demo.yaml with 1 thread, the same seed for data and training;
test split; the `quality_trained` fixture is seed 0):
    seed  click AUC  like AUC  watch RMSE/mean (s)  watch RMSE/mean (log1p)  rating RMSE/mean
    0     0.697      0.815     0.946                0.868                    0.607
    1     0.685      0.818     0.939                0.833                    0.606
    2     0.739      0.763     0.920                0.871                    0.821
    3     0.666      0.855     0.973                0.882                    0.672
    4     0.632      0.857     0.972                0.848                    0.541
The thresholds sit below the worst seed (AUC) or above it (RMSE ratios), yet far enough from chance
(AUC 0.5, ratio 1.0) that a broken mask, loss or export fails them. Watch time in seconds is
heavy-tailed and noisy, so its bound is the literal one (beat the mean); on log1p it is tighter.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # trains the demo model to convergence (about 10 s)

CLICK_AUC_MIN = 0.58
LIKE_AUC_MIN = 0.70
WATCH_RMSE_RATIO_MAX = 1.0  # model RMSE / RMSE of predicting the training mean, seconds
WATCH_LOG_RMSE_RATIO_MAX = 0.95  # the same on log1p(seconds), the scale the task is trained on
RATING_RMSE_RATIO_MAX = 0.90


def mean_baseline_rmse(quality_trained, task: str, log1p: bool = False) -> float:
    """RMSE on the test split of predicting the training split's mean observed label."""
    j = quality_trained.spec.task_names().index(task)
    f = np.log1p if log1p else (lambda x: x)
    train_y = f(quality_trained.prepared.train.raw_labels[:, j])
    test_y = f(quality_trained.prepared.test.raw_labels[:, j])
    seen = ~np.isnan(test_y)
    return float(np.sqrt(np.mean((test_y[seen] - np.nanmean(train_y)) ** 2)))


def quality(quality_trained) -> dict[str, float]:
    t = quality_trained.metrics["test"]["tasks"]
    return {
        "click_auc": t["click"]["auc"],
        "like_auc": t["like"]["auc"],
        "watch_ratio": t["watch_time"]["rmse"] / mean_baseline_rmse(quality_trained, "watch_time"),
        "watch_log_ratio": t["watch_time"]["rmse_log1p"] / mean_baseline_rmse(quality_trained, "watch_time", log1p=True),
        "rating_ratio": t["rating"]["rmse"] / mean_baseline_rmse(quality_trained, "rating"),
    }


def test_binary_heads_rank_far_better_than_chance(quality_trained) -> None:
    q = quality(quality_trained)
    assert q["click_auc"] > CLICK_AUC_MIN, q
    assert q["like_auc"] > LIKE_AUC_MIN, q


def test_regression_heads_beat_predicting_the_training_mean(quality_trained) -> None:
    q = quality(quality_trained)
    assert q["watch_ratio"] < WATCH_RMSE_RATIO_MAX, q
    assert q["watch_log_ratio"] < WATCH_LOG_RMSE_RATIO_MAX, q
    assert q["rating_ratio"] < RATING_RMSE_RATIO_MAX, q


def test_training_stopped_early_or_improved_until_the_end(quality_trained) -> None:
    """The restored weights are the best validation epoch's, and validation improved after epoch 1."""
    losses = [h["valid_loss"] for h in quality_trained.history]
    assert min(losses) < losses[0]
    assert all(np.isfinite(losses))


def _measure(seeds: list[int]) -> None:
    import tempfile

    from tests.conftest import DEMO_SPEC, TEST_ROWS
    from training.data.demo import DemoConfig, write_demo
    from training.fit.train import train
    from training.spec import load_spec

    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            write_demo(Path(tmp), DemoConfig(rows=TEST_ROWS, seed=seed))
            spec = load_spec(DEMO_SPEC, data_path=tmp)
            spec.train.seed = seed
            spec.train.threads = 1  # as the `quality_trained` fixture
            q = quality(train(spec, progress=False))
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in q.items()), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    parser = argparse.ArgumentParser(description="measure the quality numbers the thresholds come from")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    _measure(parser.parse_args().seeds)
