"""The demo generator: deterministic, label structure as documented, tasks related but different."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from training.data.demo import DemoConfig, _simulate, ceiling, generate


@pytest.fixture(scope="module")
def table():
    return generate(DemoConfig(rows=20_000, seed=7))


def test_same_seed_same_rows_other_seed_other_rows(table) -> None:
    assert generate(DemoConfig(rows=20_000, seed=7)).equals(table)
    assert not generate(DemoConfig(rows=20_000, seed=8)).equals(table)


def test_labels_are_observed_only_where_documented(table) -> None:
    click = table.column("click").to_numpy().astype(bool)
    for name in ("watch_time", "like", "rating"):
        seen = pc.is_valid(table.column(name)).to_numpy(zero_copy_only=False)
        assert not (seen & ~click).any(), f"{name} observed without a click"
    assert (pc.is_valid(table.column("watch_time")).to_numpy(zero_copy_only=False) == click).all()
    like_seen = pc.is_valid(table.column("like")).to_numpy(zero_copy_only=False)
    assert 0.3 < like_seen.sum() / click.sum() < 0.7
    rating = table.column("rating").drop_null().to_numpy()
    assert set(np.unique(rating)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    wt = table.column("watch_time").drop_null().to_numpy()
    assert (wt > 0).all() and wt.max() > 10 * np.median(wt)  # heavy tail


def test_rows_are_sorted_by_time_with_requests_contiguous(table) -> None:
    ts = table.column("ts").cast("int64").to_numpy()
    assert (np.diff(ts) >= 0).all()
    req = table.column("request_id").to_numpy()
    starts = np.flatnonzero(np.r_[True, req[1:] != req[:-1]])
    assert len(starts) == len(np.unique(req))


def test_engagement_and_satisfaction_are_correlated_but_not_identical() -> None:
    _, truth = _simulate(DemoConfig(rows=50_000, seed=1))
    r = np.corrcoef(truth["p_click"], truth["p_like"])[0, 1]
    assert 0.15 < r < 0.7
    # Clickbait: a visible share of rows are likely clicks but unlikely likes.
    bait = (truth["p_click"] > np.quantile(truth["p_click"], 0.8)) & (truth["p_like"] < 0.3)
    assert bait.mean() > 0.01


def test_ceiling_beats_the_mean_baseline_and_is_not_trivial() -> None:
    c = ceiling(DemoConfig(rows=20_000, seed=0))
    assert 0.7 < c["click"]["auc"] < 0.95 and 0.75 < c["like"]["auc"] < 0.99
    assert c["watch_time"]["rmse"] < c["watch_time"]["mean_rmse"]
    assert c["rating"]["rmse"] < c["rating"]["mean_rmse"]
