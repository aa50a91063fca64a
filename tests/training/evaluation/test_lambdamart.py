"""LambdaMART beside every model (issue 22, item 3): LightGBM's lambdarank on the same encoded features,
split and gain, its NDCG beside the model's in the summary, report.md and `ranker evaluate`, with a warning
when the model (or a served profile) trails it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from training import data as D
from training.bundle.metric_tables import lambdamart_warnings, run_lambdamart_warnings
from training.bundle.report import render_bundle_report, summary_table
from training.evaluation import baseline as B
from training.evaluation import lambdamart as L
from training.evaluation.metrics import ndcg_at_k
from training.evaluation.served import gains

RANKER_AHEAD = "the LambdaMART baseline (LightGBM lambdarank) is ahead on ndcg@10 by"


def _ranking_problem(seed: int, requests: int = 300, size: int = 8, with_requests: bool = True) -> D.Encoded:
    """Rows of the demo spec's shape (5 categorical, 5 numeric, tasks click/watch_time/like/rating) whose
    click and like follow two numeric features; each request's rows scattered over the split."""
    rng = np.random.default_rng(seed)
    n = requests * size
    numeric = rng.normal(size=(n, 5)).astype(np.float32)
    categorical = rng.integers(1, 6, size=(n, 5))
    click = (numeric[:, 0] + 0.5 * rng.normal(size=n) > 0.8).astype(float)
    like = click * (numeric[:, 1] + 0.5 * rng.normal(size=n) > 0.5)
    raw = np.stack([click, np.full(n, np.nan), like, np.full(n, np.nan)], axis=1)
    request = rng.permutation(np.repeat(np.arange(requests), size)) if with_requests else None
    return D.Encoded(categorical=categorical, numeric=numeric, labels=np.nan_to_num(raw).astype(np.float32),
                     raw_labels=raw, mask=~np.isnan(raw), request=request)


@pytest.fixture()
def spec(tiny_spec):
    spec = tiny_spec.without_ranking()  # the four label tasks _ranking_problem's columns hold
    spec.train.threads = 1
    return spec


def _random_ndcg(e: D.Encoded, spec) -> float:
    return ndcg_at_k(e.request, np.random.default_rng(0).random(len(e)), gains(spec, e.raw_labels), 10)


def test_it_learns_a_synthetic_ranking_well_beyond_random(spec) -> None:
    train, valid, test = (_ranking_problem(s) for s in (1, 2, 3))
    fitted = L.fit(train, valid, spec)
    assert fitted.relevance.edges is None  # click + like: integer gains 0..2, their own labels
    assert fitted.ndcg(test, spec) > _random_ndcg(test, spec) + 0.2
    assert 1 <= fitted.iterations < L.MAX_TREES  # early-stopped on the validation NDCG


def test_two_fits_are_identical(spec) -> None:
    spec.train.threads = 2
    train, valid, test = (_ranking_problem(s) for s in (1, 2, 3))
    first, second = L.fit(train, valid, spec), L.fit(train, valid, spec)
    assert np.array_equal(first.scores(test), second.scores(test)) and first.iterations == second.iterations


def test_gains_that_are_not_small_integers_get_levels(spec) -> None:
    assert L.Relevance.of(np.array([0.0, 1, 2, 30])).record() == {"labels": "gain"}
    gain = np.array([0.0, 0.0, 0.3, 0.7, 1.1, 2.5, 4.0, 9.0, 31.0, 45.0])
    levels = L.Relevance.of(gain)
    labels = levels.labels(gain)
    assert levels.edges is not None and labels.dtype == np.int32
    assert labels[:2].tolist() == [0, 0] and labels[2] >= 1 and labels.max() == len(levels.label_gain) - 1 <= 5
    assert np.all(np.diff(labels) >= 0) and np.all(np.diff(levels.label_gain) >= 0)  # order kept
    assert L.Relevance.of(np.array([0.0, 32.0])).edges is not None  # an integer past LightGBM's 30 levels
    spec.eval.gain_weights = {"click": 0.7, "like": 2.3}
    train, valid, test = (_ranking_problem(s) for s in (1, 2, 3))
    record = L.measure(spec, train, valid, {"test": test})
    assert record["relevance"]["labels"] == "levels" and "relevance levels" in L.relevance_text(record["relevance"])
    assert record["test"]["ndcg@10"] > _random_ndcg(test, spec) + 0.2


def test_no_lambdamart_without_a_request_id(spec) -> None:
    train, valid = _ranking_problem(1, with_requests=False), _ranking_problem(2, with_requests=False)
    assert L.measure(spec, train, valid, {"valid": valid}) is None
    record = B.measure(spec, train, valid, {"valid": valid}, {})
    assert "lambdamart" not in record and "lambdamart" not in B.split_baseline(record, "valid")


def test_no_lambdamart_when_every_request_is_one_row(spec) -> None:
    """A request id that is unique per row (a row id taken for the request) groups nothing: no ranker, no
    NDCG, rather than a one-tree model over lists of one."""
    train, valid = _ranking_problem(1, requests=2400, size=1), _ranking_problem(2)
    assert L.fit(train, valid, spec) is None


def test_training_measures_it_beside_the_gbdt(trained) -> None:
    ranker = trained.baseline["lambdamart"]
    assert ranker["kind"] == "lambdamart" and ranker["iterations"] >= 1 and ranker["relevance"] == {"labels": "gain"}
    for split in ("valid", "test"):
        assert 0 < ranker[split]["ndcg@10"] <= 1
    json.dumps(trained.baseline)  # it goes into the manifest as it is
    view = B.split_baseline(trained.baseline, "test")
    assert view["tasks"] == trained.baseline["test"]["tasks"] and view["lambdamart"]["ndcg@10"] == ranker["test"]["ndcg@10"]


def _with_ranker(trained, ndcg: float, profiles: dict[str, float] | None = None):
    """The tiny run with its LambdaMART's NDCG replaced (and, as the manifest has them, served profiles)."""
    base = {**trained.baseline, "lambdamart": {**trained.baseline["lambdamart"], "valid": {"ndcg@10": ndcg},
                                               "test": {"ndcg@10": ndcg}}}
    run = dataclasses.replace(trained, baseline=base)
    metrics = {**trained.metrics, "baseline": base}
    if profiles is not None:
        metrics = {**metrics, "valid": {**metrics["valid"], "profiles": profiles},
                   "test": {**metrics["test"], "profiles": profiles},
                   "profiles": {"weights": "weights.yaml", "k": 10, "valid": profiles, "test": profiles}}
    return run, metrics


def test_the_summary_and_report_show_its_ndcg_and_the_lead(trained) -> None:
    run, metrics = _with_ranker(trained, 0.0)
    summary = summary_table(run)
    assert "LambdaMART (LightGBM lambdarank, same features, split and gain; " in summary
    lead = trained.metrics["test"]["ndcg@10"]
    assert f"ndcg@10 0.0000, the model's lead +{lead:.4f}" in summary
    report = render_bundle_report(run, {"rows": {}})
    assert f"the model's lead +{lead:.4f} (test)." in report and "the LambdaMART: LightGBM's lambdarank" in report
    assert RANKER_AHEAD not in report and run_lambdamart_warnings(metrics, run.spec) == []


def test_a_warning_names_it_when_the_model_trails(trained) -> None:
    run, metrics = _with_ranker(trained, 1.0)
    by = 1.0 - trained.metrics["valid"]["ndcg@10"]
    warnings = run_lambdamart_warnings(metrics, run.spec)
    assert f"{RANKER_AHEAD} {by:.4f} (valid)" in warnings
    report = render_bundle_report(run, {"rows": {}})
    assert f"- {RANKER_AHEAD} {by:.4f} (valid)" in report.split("## Metrics")[0]  # in the Warnings section
    assert "the model's lead -" in summary_table(run)


def test_served_profiles_that_trail_it_are_named(trained) -> None:
    run, metrics = _with_ranker(trained, 0.9, profiles={"default": 0.5, "click_only": 0.95})
    warnings = lambdamart_warnings(metrics["valid"], B.split_baseline(metrics["baseline"], "valid"), run.spec, "valid")
    assert ("served profiles behind the LambdaMART baseline (LightGBM lambdarank) on ndcg@10 (valid): default by "
            "0.4000") in warnings
    assert not any("click_only" in w for w in warnings)
    summary = summary_table(run, metrics)
    assert "served profiles, ranked as the server ranks (lead: over LambdaMART):" in summary
    assert any(line.split() == ["default", "ndcg@10", "0.5000", "-0.4000"] for line in summary.splitlines())
    report = render_bundle_report(run, {"rows": {}}, metrics)
    assert "| profile | valid NDCG@10 | test NDCG@10 | valid lead over LambdaMART | test lead over LambdaMART |" in report
    assert "| `default` | 0.5000 | 0.5000 | -0.4000 | -0.4000 |" in report
