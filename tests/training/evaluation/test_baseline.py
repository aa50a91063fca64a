"""The GBDT baseline beside every model (issue 9, item 9): inputs, when it runs, what it reports."""

from __future__ import annotations

import numpy as np
import pytest

from training import data as D
from training.bundle.metric_tables import lead, split_rows
from training.bundle.report import render_bundle_report, summary_table
from training.evaluation import baseline as B


def _encoded(categorical: np.ndarray) -> D.Encoded:
    n = len(categorical)
    return D.Encoded(categorical=categorical, numeric=np.zeros((n, 1), np.float32), labels=np.zeros((n, 1), np.float32),
                     raw_labels=np.zeros((n, 1)), mask=np.ones((n, 1), bool), request=None)


def test_rare_codes_share_one_category_within_the_gbdt_limit() -> None:
    x = B.gbdt_inputs(_encoded(np.array([[0, 1], [253, 254], [255, 90_000]])))
    assert x[:, :2].tolist() == [[0, 1], [253, 254], [254, 254]]
    assert x.max() <= 254


@pytest.mark.parametrize("mode, rows, want", [("auto", 999_999, True), ("auto", 1_000_000, False),
                                              ("gbdt", 5_000_000, True), ("none", 10, False)])
def test_when_the_baseline_runs(tiny_spec, mode: str, rows: int, want: bool) -> None:
    spec = tiny_spec.model_copy(deep=True)
    spec.eval.baseline = mode
    assert B.wanted(spec, rows) is want


def test_training_measures_the_gbdt_on_the_same_splits(trained) -> None:
    base = trained.baseline
    assert base["kind"] == "gbdt" and set(base) >= {"valid", "test", "seconds", "iterations"}
    assert base["test"]["rows"] == trained.metrics["test"]["rows"]
    assert base["test"]["tasks"]["click"]["observed"] == trained.metrics["test"]["tasks"]["click"]["observed"]
    assert 0.6 < base["test"]["tasks"]["click"]["auc"] < 1.0  # it learns something: not a constant
    assert base["test"]["tasks"]["rating"]["rmse"] < np.nanstd(trained.prepared.test.raw_labels[:, 3])
    assert all(n >= 1 for n in base["iterations"].values())


def test_the_report_and_the_summary_put_the_gbdt_beside_the_model(trained) -> None:
    report = render_bundle_report(trained, {"rows": {}})
    assert "| task | metric | model | constant | skill | GBDT | lead | observed |" in report
    model_auc = f"{trained.metrics['test']['tasks']['click']['auc']:.4f}"
    gbdt_auc = f"{trained.baseline['test']['tasks']['click']['auc']:.4f}"
    assert f"| click | auc | {model_auc} | 0.5000 |  | {gbdt_auc} |" in report  # model, constant, skill, GBDT
    assert "GBDT" in summary_table(trained)


def test_lead_is_positive_when_the_model_is_better(trained) -> None:
    assert lead("auc", 0.8, 0.7) == pytest.approx(0.1) and lead("rmse", 1.0, 1.2) == pytest.approx(0.2)
    assert lead("ndcg", 0.5, 0.6) == pytest.approx(-0.1) and lead("rmse", None, 1.0) is None
    _, rows = split_rows(trained.metrics["test"], trained.spec, trained.baseline["test"])
    assert [r[0] for r in rows][:3] == ["click", "click", "watch_time"] and rows[-1][0] == "(ranking)"


def test_no_baseline_when_the_spec_says_none(tiny_spec) -> None:
    from training.fit.train import train

    spec = tiny_spec.model_copy(deep=True)
    spec.eval.baseline, spec.train.epochs, spec.train.threads = "none", 1, 1
    trained = train(spec, progress=False)
    assert trained.baseline is None
    assert "Baseline" not in render_bundle_report(trained, {"rows": {}})
