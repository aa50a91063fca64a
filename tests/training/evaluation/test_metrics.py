"""Offline metrics: NDCG bounds and ideal order, AUC/RMSE on observed labels only, gate statistics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from training.evaluation.metrics import (
    auc,
    auc_standard_error,
    gate_stats,
    ndcg_at_k,
    prediction_metrics,
    rmse,
)
from training.spec import RankerSpec


@st.composite
def ranking_case(draw):
    n_req = draw(st.integers(1, 6))
    sizes = draw(st.lists(st.integers(1, 12), min_size=n_req, max_size=n_req))
    request = np.repeat(np.arange(n_req), sizes)
    n = len(request)
    gains = draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 0.0, 1.0, 2.0, 3.5])))
    scores = draw(arrays(np.float64, n, elements=st.floats(-5, 5, allow_nan=False)))
    perm = draw(st.permutations(range(n)))  # rows need not be grouped by request
    k = draw(st.integers(1, 12))
    return request[perm], scores[perm], gains[perm], k


@settings(max_examples=200, deadline=None)
@given(ranking_case())
def test_ndcg_is_between_zero_and_one_and_one_for_the_ideal_order(case) -> None:
    request, scores, gains, k = case
    value = ndcg_at_k(request, scores, gains, k)
    sizes = np.bincount(request)
    positive = np.bincount(request, weights=(gains > 0).astype(float)) > 0
    if not (positive & (sizes > 1)).any():  # only requests of 2+ rows with a positive gain count
        assert value is None
        return
    assert 0.0 <= value <= 1.0 + 1e-12
    assert ndcg_at_k(request, gains, gains, k) == pytest.approx(1.0)
    assert ndcg_at_k(request, gains + 1e-3 * scores / 10, gains, k) == pytest.approx(1.0)  # ties only


def test_ndcg_of_the_worst_order_is_below_the_best() -> None:
    request = np.zeros(5, dtype=int)
    gains = np.array([3.0, 2.0, 0.0, 0.0, 1.0])
    assert ndcg_at_k(request, -gains, gains, 3) < ndcg_at_k(request, gains, gains, 3) == 1.0


def test_auc_and_rmse_ignore_unobserved_labels() -> None:
    y = np.array([1.0, 0.0, np.nan, 1.0, np.nan])
    p = np.array([0.9, 0.1, 0.99, 0.8, -50.0])
    assert auc(y, p) == 1.0
    assert auc(np.array([1.0, np.nan]), np.array([0.3, 0.2])) is None  # one class only
    assert rmse(np.array([1.0, np.nan, 3.0]), np.array([2.0, 100.0, 3.0])) == pytest.approx(np.sqrt(0.5))
    assert rmse(np.array([np.nan]), np.array([1.0])) is None


def test_gate_stats_spot_uniform_and_polarized_gates() -> None:
    uniform = np.full((1, 100, 4), 0.25)
    polar = np.zeros((1, 100, 4))
    polar[..., 2] = 1.0
    s = gate_stats(np.concatenate([uniform, polar]), ["u", "p"])
    assert s["u"]["normalized_entropy"] == pytest.approx(1.0)
    assert s["u"]["effective_experts"] == pytest.approx(4.0)
    assert not s["u"]["polarized"] and s["u"]["dead_experts"] == 0
    assert s["p"]["polarized"] and s["p"]["dead_experts"] == 3
    assert s["p"]["effective_experts"] == pytest.approx(1.0)


def test_auc_standard_error_matches_hanley_mcneil_and_shrinks_with_more_labels() -> None:
    # AUC 0.5 with n positives and n negatives: var = (1/4 + (n - 1) / 6) / n^2
    assert auc_standard_error(0.5, 100, 100) == pytest.approx(np.sqrt((0.25 + 99 / 6) / 100**2))
    assert auc_standard_error(0.8, 4, 29) > 0.05 > auc_standard_error(0.8, 2_000, 8_000)


def test_a_split_too_small_to_compare_models_on_is_named_in_the_warnings() -> None:
    spec = RankerSpec.model_validate({
        "name": "s", "data": {"path": "x"},
        "features": {"categorical": [{"name": "u", "source": "user"}], "numeric": [{"name": "x", "source": "item"}]},
        "tasks": [{"name": "wren", "type": "binary", "group": "engagement"},
                  {"name": "stars", "type": "regression", "group": "satisfaction"}]})
    rng = np.random.default_rng(0)

    def warnings(rows: int) -> list[str]:
        labels = np.stack([rng.integers(0, 2, rows).astype(float), rng.normal(size=rows)], axis=1)
        return prediction_metrics(labels + rng.normal(size=labels.shape), labels, None, spec)["warnings"]

    small = warnings(33)  # the birds walkthrough's validation split
    assert any(w.startswith("wren: AUC on 33 labels") and "standard error" in w for w in small)
    assert any(w.startswith("stars: RMSE on only 33 labels") for w in small)
    assert warnings(20_000) == []
