"""The experiment statistics: the bootstrap by user, the sample-ratio check, the verdict."""

import numpy as np
import pytest

from training.experiments import stats as S


def interval_of(cluster: np.ndarray, values: np.ndarray, seed: int = 0) -> S.Interval:
    sums, counts = S.user_sums(cluster, values)
    reps = S.replicates(np.column_stack([sums, counts]), 4000, np.random.default_rng(seed))
    return S.percentile(sums.sum() / counts.sum(), S.ratio(reps[:, 0], reps[:, 1]))


def test_bootstrap_of_a_rate_matches_the_binomial_interval():
    # One row per user: the bootstrap by user is the binomial interval p +- 1.96 sqrt(p (1-p) / n).
    y = np.r_[np.ones(600), np.zeros(1400)]  # p = 0.3, n = 2000
    est = interval_of(np.arange(len(y)), y)
    half = 1.96 * np.sqrt(0.3 * 0.7 / len(y))
    assert est.value == pytest.approx(0.3)
    assert est.lo == pytest.approx(0.3 - half, abs=0.002) and est.hi == pytest.approx(0.3 + half, abs=0.002)


def test_bootstrap_by_user_does_not_count_a_users_copies_as_evidence():
    # Every user's row repeated ten times: the same users, so the same interval (by user), not sqrt(10) narrower.
    y = np.r_[np.ones(600), np.zeros(1400)]
    once = interval_of(np.arange(len(y)), y)
    tenfold = interval_of(np.repeat(np.arange(len(y)), 10), np.repeat(y, 10))
    assert tenfold.hi - tenfold.lo == pytest.approx(once.hi - once.lo, rel=0.1)
    rows = interval_of(np.arange(10 * len(y)), np.repeat(y, 10))  # resampling rows instead
    assert rows.hi - rows.lo < 0.5 * (once.hi - once.lo)


def test_unobserved_labels_are_left_out_of_the_mean():
    sums, counts = S.user_sums(np.array([0, 0, 1, 1]), np.array([1.0, np.nan, 0.0, np.nan]))
    assert sums.tolist() == [1.0, 0.0] and counts.tolist() == [1.0, 1.0]


def test_difference_of_independent_arms_and_verdicts():
    rng = np.random.default_rng(1)
    a, c = rng.normal(0.12, 0.005, 2000), rng.normal(0.10, 0.005, 2000)
    cmp = S.compare(0.12, a, 0.10, c)
    assert cmp.verdict == "better" and cmp.difference.lo > 0
    assert cmp.difference.hi - cmp.difference.lo == pytest.approx(2 * 1.96 * np.sqrt(2) * 0.005, rel=0.1)
    assert cmp.lift.value == pytest.approx(0.2)
    assert S.compare(0.12, a, 0.10, c, higher_is_better=False).verdict == "worse"
    assert S.compare(0.10, c + 0.0, 0.10, rng.normal(0.10, 0.005, 2000)).verdict == "no detectable difference"


def test_sample_ratio_mismatch_fires_on_a_skewed_split_not_on_a_fair_one():
    fair = S.sample_ratio({"control": 9_010, "tuned": 990}, {"control": 0.9, "tuned": 0.1})
    skewed = S.sample_ratio({"control": 9_200, "tuned": 800}, {"control": 0.9, "tuned": 0.1})
    assert not fair.mismatch and fair.p_value > 0.5
    assert skewed.mismatch and skewed.p_value < 1e-6
    # A share of 0 that saw users is a mismatch; an arm with no configured share is an error naming it.
    assert S.sample_ratio({"control": 10, "off": 1}, {"control": 1.0, "off": 0.0}).mismatch
    with pytest.raises(ValueError, match="'stray'"):
        S.sample_ratio({"control": 10, "stray": 1}, {"control": 1.0})


def test_replicates_are_chunked_without_changing_their_number(monkeypatch):
    monkeypatch.setattr(S, "DRAWS_PER_CHUNK", 50)
    per_user = np.ones((20, 2))
    reps = S.replicates(per_user, 7, np.random.default_rng(0))
    assert reps.shape == (7, 2) and np.all(reps == 20)  # every replicate draws 20 users
