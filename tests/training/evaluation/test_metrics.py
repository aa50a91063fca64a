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


def _two_task_spec(demo_spec: RankerSpec) -> RankerSpec:
    spec = demo_spec.model_copy(deep=True)
    spec.tasks = [t for t in spec.tasks if t.name in ("click", "watch_time")]
    spec.eval.gain_weights = {"click": 1.0}
    spec.eval.score_weights = {"click": 1.0}
    return spec


def test_the_constant_baseline_and_skill_beside_every_head(demo_spec: RankerSpec) -> None:
    """Issue 21, item 4: the training prevalence / mean as a baseline, a skill figure, and a warning that names
    a head within noise of it (and none for a head that is clearly better)."""
    from training.evaluation.constant import constants_of

    spec = _two_task_spec(demo_spec)
    rng = np.random.default_rng(0)
    n = 4000
    p = rng.uniform(0.05, 0.6, n)
    click = (rng.random(n) < p).astype(float)
    watch = rng.lognormal(3 + 2 * p, 0.5)
    labels = np.stack([click, watch], axis=1)
    constants = constants_of(spec, labels)
    assert constants["click"].mean == pytest.approx(click.mean())
    assert constants["watch_time"].mean_log1p == pytest.approx(np.log1p(watch).mean())
    good = prediction_metrics(np.stack([p, np.expm1(3 + 2 * p)], axis=1), labels, None, spec, constants=constants)
    click_m, watch_m = good["tasks"]["click"], good["tasks"]["watch_time"]
    assert click_m["constant"]["auc"] == 0.5 and click_m["constant"]["value"] == pytest.approx(click.mean())
    assert click_m["skill"]["log_loss"] == pytest.approx(1 - click_m["log_loss"] / click_m["constant"]["log_loss"])
    assert watch_m["skill"]["rmse_log1p"] > 0.1  # the log1p scale the head is judged on (noise std 0.5 of 0.59)
    assert not [w for w in good["warnings"] if "no better than" in w]
    noise = np.stack([rng.uniform(0.05, 0.6, n), np.full(n, np.expm1(np.log1p(watch).mean())) + rng.normal(0, 1, n)],
                     axis=1)
    weak = prediction_metrics(noise, labels, None, spec, constants=constants)["warnings"]
    assert any(w.startswith("click: no better than predicting the training prevalence") for w in weak), weak
    assert any(w.startswith("watch_time: no better than predicting the training mean") for w in weak), weak


def test_served_heads_are_measured_beside_the_model_heads_only_where_they_differ(demo_spec: RankerSpec) -> None:
    spec = _two_task_spec(demo_spec)
    rng = np.random.default_rng(1)
    p = rng.uniform(0.05, 0.6, 500)
    labels = np.stack([(rng.random(500) < p).astype(float), rng.lognormal(3, 0.5, 500)], axis=1)
    preds = np.stack([p, np.full(500, 20.0)], axis=1)
    served = preds.copy()
    served[:, 1] *= 1.2  # a smeared watch_time head; click served unchanged
    m = prediction_metrics(preds, labels, None, spec, served=served)["tasks"]
    assert "served" not in m["click"]
    assert m["watch_time"]["served"]["rmse"] == pytest.approx(rmse(labels[:, 1], served[:, 1]))
    assert m["watch_time"]["rmse"] == pytest.approx(rmse(labels[:, 1], preds[:, 1]))
