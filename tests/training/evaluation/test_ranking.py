"""Per-request ranking metrics against slow, obvious references (scipy, loops, permutations)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau

from training.evaluation import ranking as R
from training.evaluation.metrics import ndcg_at_k


def world(n_requests=60, seed=0, max_size=25):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_size, n_requests)
    request = np.repeat(np.arange(n_requests) * 7 + 1000, sizes)  # ids are values, not 0..R-1
    n = len(request)
    labels = np.where(rng.random(n) < 0.3, rng.integers(0, 4, n).astype(float), np.nan)
    scores = np.round(rng.normal(size=n), 1)  # rounded: ties happen
    return request, scores, labels, rng


def test_requests_are_grouped_by_value_in_order_of_first_appearance():
    req = R.Requests.of(np.array(["b", "a", "b", "c", "a"]))
    assert req.ids.tolist() == ["b", "a", "c"] and req.group.tolist() == [0, 1, 0, 2, 1]
    assert req.sizes.tolist() == [2, 2, 1]


def test_ndcg_matches_the_trainers_ndcg_on_contiguous_requests():
    request, scores, labels, _ = world()
    dense = np.unique(request, return_inverse=True)[1]
    per = R.ndcg(R.Requests.of(request), scores, labels, 5)
    assert np.nanmean(per) == pytest.approx(ndcg_at_k(dense, scores, np.nan_to_num(labels), 5), rel=1e-12)


def test_shuffling_rows_changes_no_metric():
    """Rows of a request need not be contiguous: with untied scores, a shuffle changes no value."""
    request, _, labels, rng = world(seed=1)
    scores, other = rng.normal(size=len(request)), rng.normal(size=len(request))
    perm = rng.permutation(len(request))
    a, b = R.Requests.of(request), R.Requests.of(request[perm])
    metrics = {
        "ndcg": lambda req, s, o, y: R.ndcg(req, s, y, 3),
        "yield": lambda req, s, o, y: R.topk_yield(req, s, y, 3),
        "overlap": lambda req, s, o, y: R.overlap(req, s, o, 3),
        "tau": lambda req, s, o, y: R.kendall_tau(req, s, o),
    }
    for name, f in metrics.items():
        x = dict(zip(a.ids.tolist(), f(a, scores, other, labels).tolist(), strict=True))
        y = dict(zip(b.ids.tolist(), f(b, scores[perm], other[perm], labels[perm]).tolist(), strict=True))
        assert x.keys() == y.keys()
        np.testing.assert_allclose([x[k] for k in x], [y[k] for k in x], rtol=1e-12, err_msg=name)


def test_kendall_tau_is_scipys_tau_b_per_request():
    request, scores, _, rng = world(seed=2)
    other = np.round(scores + rng.normal(0, 0.8, len(scores)), 1)
    req = R.Requests.of(request)
    got = R.kendall_tau(req, scores, other)
    for r in range(len(req)):
        rows = req.group == r
        want = kendalltau(scores[rows], other[rows]).statistic if rows.sum() > 1 else np.nan
        assert got[r] == pytest.approx(want, nan_ok=True, abs=1e-12)


def test_overlap_and_yield_by_hand():
    req = R.Requests.of(np.array([1, 1, 1, 1, 2, 2]))
    a = np.array([4.0, 3.0, 2.0, 1.0, 1.0, 2.0])
    b = np.array([1.0, 3.0, 2.0, 4.0, 2.0, 1.0])
    assert R.overlap(req, a, b, 2).tolist() == [0.5, 1.0]
    labels = np.array([1.0, np.nan, 0.0, 5.0, 2.0, 1.0])
    assert R.topk_yield(req, a, labels, 2).tolist() == [0.5, 1.5]  # null counts 0; k capped by size
    assert R.topk_yield(req, b, labels, 2).tolist() == [2.5, 1.5]


def test_random_bounds_equal_the_mean_over_all_permutations():
    labels = np.array([3.0, 0.0, 1.0, np.nan, 2.0])
    req = R.Requests.of(np.zeros(5, int))
    # Every order of the 5 rows once (5! = 120): the exact mean, where 20k random draws only came within 0.005.
    every = [R.ndcg(req, np.array(order, dtype=float), labels, 3)[0] for order in itertools.permutations(range(5))]
    assert R.random_ndcg(req, labels, 3)[0] == pytest.approx(np.mean(every), abs=1e-12)
    assert R.random_yield(req, labels)[0] == pytest.approx(6.0 / 5)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-3, 3), st.floats(0, 5)), min_size=1, max_size=40),
       st.integers(1, 6))
def test_ndcg_is_between_0_and_1_and_1_for_the_label_order(rows, k):
    request = np.array([r[0] for r in rows])
    scores = np.array([r[1] for r in rows])
    labels = np.array([r[2] for r in rows])
    req = R.Requests.of(request)
    per = R.ndcg(req, scores, labels, k)
    assert np.all((per[np.isfinite(per)] >= -1e-12) & (per[np.isfinite(per)] <= 1 + 1e-12))
    assert np.allclose(R.ndcg(req, labels, labels, k)[np.isfinite(per)], 1.0)


def test_seen_ndcg_ranks_only_the_rows_with_an_observed_label():
    req = R.Requests.of(np.array([1, 1, 1, 1, 2, 2]))
    scores = np.array([4.0, 3.0, 2.0, 1.0, 2.0, 1.0])
    labels = np.array([np.nan, 0.0, 1.0, np.nan, np.nan, np.nan])  # request 2: nothing observed
    got = R.seen_ndcg(req, scores, labels, 10)
    # Among the observed rows (scores 3 and 2, labels 0 and 1) the liked one is second: DCG 1/log2(3).
    assert got[0] == pytest.approx(1 / np.log2(3)) and np.isnan(got[1])
    assert R.ndcg(req, scores, labels, 10)[0] == pytest.approx(1 / np.log2(4))  # counts the unobserved rows
