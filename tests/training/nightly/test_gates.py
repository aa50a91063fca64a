"""Each promotion gate on small synthetic scores: passes when it should, fails when it should, and
reports by how much."""

from __future__ import annotations

import numpy as np
import pytest

from service.contract.bundle import ScoreStats, TaskInfo
from service.profiles import parse_weights
from tests.training.conftest import pointwise
from training.evaluation.metrics import rmse
from training.nightly.gates import (
    Scored,
    check,
    finite_gates,
    floor_gate,
    metric_gates,
    parity_gate,
    profile_gates,
    run_gates,
    shift_gates,
    tasks_gate,
)
from training.spec import RankerSpec

TASKS = ["click", "watch_time", "like", "rating"]


@pytest.fixture(scope="module")
def spec(demo_spec: RankerSpec) -> RankerSpec:
    return pointwise(demo_spec)  # the worlds below score the four pointwise heads


def make_world(n_requests: int = 200, k: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Scored]:
    """Labels (N, 4), request index (N,), and a good model's scores."""
    rng = np.random.default_rng(seed)
    n = n_requests * k
    p = rng.uniform(0.05, 0.6, n)
    click = (rng.random(n) < p).astype(float)
    watch = np.where(click == 1, rng.lognormal(4 + 2 * p, 0.5), np.nan)
    like = np.where(click == 1, (rng.random(n) < p).astype(float), np.nan)
    rating = np.where(click == 1, 2 + 4 * p + rng.normal(0, 0.3, n), np.nan)
    labels = np.stack([click, watch, like, rating], axis=1)
    preds = np.stack([p, np.exp(4 + 2 * p), p, 2 + 4 * p], axis=1)
    return labels, np.repeat(np.arange(n_requests), k), Scored(preds, TASKS)


def test_check_margin_is_signed_headroom() -> None:
    assert check("g", "s", 0.7, ">=", 0.6, "").margin == pytest.approx(0.1)
    failed = check("g", "s", 0.5, ">=", 0.6, "")
    assert not failed.passed and failed.margin == pytest.approx(-0.1)
    assert check("g", "s", 3.0, "<=", 5.0).margin == pytest.approx(2.0)
    assert not check("g", "s", None, "<=", 5.0).passed
    assert not check("g", "s", float("nan"), "<=", 5.0).passed


def test_identical_candidate_passes_everything(spec: RankerSpec) -> None:
    labels, request, good = make_world()
    results = run_gates(spec, labels, request, good, good, check("parity", "model", 0.0, "<=", 1.0))
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    gates = {r.gate for r in results}
    assert gates == {"parity", "finite", "tasks", "metric", "mean_shift", "quantile_shift", "weights", "topk_overlap",
                     "ndcg"}


def test_metric_gate_rejects_a_worse_binary_head_and_says_by_how_much(spec: RankerSpec) -> None:
    labels, _, good = make_world()
    rng = np.random.default_rng(1)
    noisy = good.preds.copy()
    noisy[:, 0] = rng.permutation(noisy[:, 0])  # click scores no longer related to clicks
    results = {r.subject: r for r in metric_gates(spec, labels, Scored(noisy, TASKS), good)}
    assert not results["click"].passed
    assert results["click"].margin < -0.05
    assert results["like"].passed and results["rating"].passed


def test_metric_gate_on_rmse_is_relative(spec: RankerSpec) -> None:
    labels, _, good = make_world()
    worse = good.preds.copy()
    worse[:, 3] += 0.5  # rating biased upwards
    results = {r.subject: r for r in metric_gates(spec, labels, Scored(worse, TASKS), good)}
    base_rmse = rmse(labels[:, 3], good.preds[:, 3])
    assert not results["rating"].passed and results["rating"].op == "<="
    assert results["rating"].threshold == pytest.approx(base_rmse * (1 + spec.gates.rmse_tolerance))
    slightly = good.preds.copy()
    slightly[:, 3] += 0.01
    assert {r.subject: r for r in metric_gates(spec, labels, Scored(slightly, TASKS), good)}["rating"].passed


def test_non_finite_outputs_fail(spec: RankerSpec) -> None:
    _, _, good = make_world()
    bad = good.preds.copy()
    bad[3, 1] = np.inf
    bad[7, 2] = np.nan
    results = {r.subject: r for r in finite_gates(Scored(bad, TASKS))}
    assert results["click"].passed and results["rating"].passed
    assert results["watch_time"].value == 1 and not results["watch_time"].passed
    assert not results["like"].passed


def test_shift_gates_catch_a_collapsed_head(spec: RankerSpec) -> None:
    _, _, good = make_world()
    collapsed = good.preds.copy()
    collapsed[:, 0] = collapsed[:, 0].mean() + 0.5 * (collapsed[:, 0] - collapsed[:, 0].mean()) + 0.2
    labels, _, _ = make_world()
    results = {(r.gate, r.subject): r for r in shift_gates(spec, labels, Scored(collapsed, TASKS), good)}
    assert not results[("mean_shift", "click")].passed
    assert results[("mean_shift", "like")].passed and results[("quantile_shift", "like")].passed


def test_a_sharper_candidate_than_an_underfit_current_is_not_a_shift(spec: RankerSpec) -> None:
    labels, _, good = make_world()
    compressed = good.preds.copy()
    compressed[:, 0] = compressed[:, 0].mean() + 0.3 * (compressed[:, 0] - compressed[:, 0].mean())
    results = shift_gates(spec, labels, good, Scored(compressed, TASKS))
    click = {r.gate: r for r in results if r.subject == "click"}
    assert click["quantile_shift"].passed and click["mean_shift"].passed
    assert "label std" in click["quantile_shift"].detail


TWO_PROFILES = parse_weights("""
profiles:
  default: {click: 1.0, like: {weight: 1.0, transform: zscore}}
  watch: {watch_time: {weight: 1.0, transform: log1p}}
""")


def with_stats(scored: Scored) -> Scored:
    """The model's manifest tasks as an exporter writes them: score statistics of its own outputs."""
    infos = [TaskInfo(name=t, type="binary", group="engagement", output=t,
                      score_stats=ScoreStats(mean=float(scored.head(t).mean()), std=float(scored.head(t).std()),
                                             min=float(scored.head(t).min()), max=float(scored.head(t).max())))
             for t in scored.tasks]
    return Scored(scored.preds, scored.tasks, infos)


def test_profile_gates_have_one_row_per_served_profile(spec: RankerSpec) -> None:
    labels, request, good = make_world()
    good = with_stats(good)
    results = profile_gates(spec, TWO_PROFILES, labels, request, good, good)
    rows = {(r.gate, r.subject): r for r in results}
    assert set(rows) == {("weights", "model"), ("topk_overlap", "default"), ("topk_overlap", "watch"),
                         ("ndcg", "default"), ("ndcg", "watch")}
    assert all(r.passed for r in results)
    assert rows[("topk_overlap", "default")].value == pytest.approx(1.0)


def test_a_reversed_candidate_fails_overlap_and_ndcg_per_profile(spec: RankerSpec) -> None:
    labels, request, good = make_world()
    reversed_ = with_stats(Scored(-good.preds, TASKS))
    results = {(r.gate, r.subject): r for r in profile_gates(spec, TWO_PROFILES, labels, request, reversed_,
                                                               with_stats(good))}
    assert results[("topk_overlap", "default")].value == pytest.approx(0.0)
    assert not results[("topk_overlap", "default")].passed and not results[("ndcg", "default")].passed


def test_rows_of_a_request_need_not_be_contiguous(spec: RankerSpec) -> None:
    """Requests are groups of equal request id values: shuffling the rows changes no gate value."""
    labels, request, good = make_world()
    good = with_stats(good)
    perm = np.random.default_rng(1).permutation(len(request))
    shuffled = Scored(good.preds[perm], TASKS, good.infos)
    before = {(r.gate, r.subject): r.value for r in profile_gates(spec, TWO_PROFILES, labels, request, good, good)}
    after = {(r.gate, r.subject): r.value for r in profile_gates(spec, TWO_PROFILES, labels[perm], request[perm],
                                                                 shuffled, shuffled)}
    assert after == pytest.approx(before)


def test_weights_the_candidate_cannot_serve_fail_the_weights_gate(spec: RankerSpec) -> None:
    labels, request, good = make_world()
    no_stats = Scored(good.preds, TASKS)  # zscore needs score statistics the candidate lacks
    results = profile_gates(spec, TWO_PROFILES, labels, request, no_stats, None)
    assert [(r.gate, r.passed) for r in results] == [("weights", False)]
    assert "servers would refuse" in results[0].detail and "zscore needs score_stats" in results[0].detail


def test_candidate_missing_a_head_fails_the_tasks_gate() -> None:
    _, _, good = make_world()
    fewer = Scored(good.preds[:, :3], TASKS[:3])
    result = tasks_gate(fewer, good)
    assert not result.passed and "rating" in result.detail


def test_first_model_is_held_to_absolute_floors(spec: RankerSpec) -> None:
    labels, request, good = make_world()
    results = run_gates(spec, labels, request, good, None, check("parity", "model", 0.0, "<=", 1.0))
    floors = {r.subject: r for r in results if r.gate == "floor"}
    assert set(floors) == set(TASKS) and all(r.passed for r in floors.values())
    random_click = floor_gate(spec, "click", labels[:, 0], np.random.default_rng(3).random(len(labels)))
    assert not random_click.passed and random_click.threshold == spec.gates.min_auc
    constant_rating = floor_gate(spec, "rating", labels[:, 3], np.full(len(labels), 9.0))
    assert not constant_rating.passed


def test_parity_gate_uses_absolute_plus_relative_tolerance(spec: RankerSpec) -> None:
    # The bundle's one tolerance (service.contract.parity): 1e-4 + 1e-5 * |torch|, so 0.0101 at 1000.
    torch_out = np.array([[0.5, 1000.0], [0.1, 20.0]])
    close = torch_out + np.array([[5e-5, 0.005], [0.0, 0.0]])
    assert parity_gate(close, torch_out).passed
    far = torch_out + np.array([[1e-3, 0.0], [0.0, 0.0]])
    assert not parity_gate(torch_out + np.array([[0.0, 0.05], [0.0, 0.0]]), torch_out).passed
    result = parity_gate(far, torch_out)
    assert not result.passed and result.value > 1


def test_log1p_heads_are_judged_as_fitted_with_smearing_undone(spec: RankerSpec) -> None:
    """A smeared watch-time head (served: the mean) passes the floor its median passes: the metric
    gates measure log1p heads in log1p space, where the graph's output was fit."""
    from service.contract.calibration import Smearing

    labels, _, good = make_world()
    infos = [TaskInfo(name=t, type="regression", group="engagement", output=t,
                      calibration=Smearing(factor=1.8) if t == "watch_time" else None) for t in TASKS]
    smeared = good.preds.copy()
    smeared[:, 1] = Smearing(factor=1.8).apply(good.preds[:, 1])
    served = Scored(smeared, TASKS, infos)
    np.testing.assert_allclose(served.fitted("watch_time"), good.head("watch_time"), rtol=1e-6)
    assert floor_gate(spec, "watch_time", labels[:, 1], served.fitted("watch_time")).value == pytest.approx(
        floor_gate(spec, "watch_time", labels[:, 1], good.head("watch_time")).value, rel=1e-6)
    assert all(r.passed for r in metric_gates(spec, labels, served, Scored(smeared, TASKS, infos)))
