"""PSI and the bins it is computed over (training/monitor/drift.py, service/contract/distribution.py)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from service.contract.bundle import ScoreStats
from service.contract.distribution import NumericDistribution
from service.contract.features import CategoricalEncoder, FeatureEncoders, NumericEncoder
from training.monitor.distribution import describe
from training.monitor.drift import PSI_EPSILON, Thresholds, head_bins, judge_categorical, judge_head, psi


def test_psi_of_known_cases() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([1, 1], [10, 10]) == 0.0  # counts are normalised
    # (0.9 - 0.5) ln(0.9/0.5) + (0.1 - 0.5) ln(0.1/0.5)
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.4 * math.log(1.8) + 0.4 * math.log(5))
    # an empty served bin costs a finite amount, through the epsilon
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(
        (1 - 0.5) * math.log(1 / 0.5) + (PSI_EPSILON - 0.5) * math.log(PSI_EPSILON / 0.5))
    with pytest.raises(ValueError):
        psi([0.5, 0.5], [1.0, 0.0, 0.0])


def test_numeric_bins_put_an_edge_value_in_the_bin_above_and_count_missing() -> None:
    d = NumericDistribution(edges=[1.0, 2.0], shares=[0.25, 0.25, 0.25], missing=0.25)
    assert d.bins(np.array([0.5, 1.0, 1.5, 2.0, np.nan])).tolist() == [1, 2, 1, 1]
    with pytest.raises(ValueError, match="sum to"):
        NumericDistribution(edges=[1.0], shares=[0.5, 0.1], missing=0.0)


def test_head_bins_merge_tied_quantiles() -> None:
    stats = ScoreStats(mean=0.5, std=0.1, min=0, max=1, quantiles={
        "p01": 0.0, "p05": 0.0, "p25": 0.2, "p50": 0.5, "p75": 0.5, "p95": 0.9, "p99": 1.0})
    edges, shares = head_bins(stats)
    assert edges.tolist() == [0.0, 0.2, 0.5, 0.9, 1.0]
    assert shares.tolist() == pytest.approx([0.01, 0.24, 0.25, 0.45, 0.04, 0.01])
    draws = np.random.default_rng(0).uniform(0, 1, 50_000)
    same = ScoreStats(mean=0.5, std=0.29, min=0, max=1, quantiles={
        f"p{q:02d}": float(np.quantile(draws, q / 100)) for q in (1, 5, 25, 50, 75, 95, 99)})
    fresh = np.random.default_rng(1).uniform(0, 1, 5_000)
    assert judge_head("h", same, fresh, Thresholds()).status == "ok"
    assert judge_head("h", same, fresh ** 3, Thresholds()).status == "alert"


def _encoders() -> FeatureEncoders:
    return FeatureEncoders(categorical=[CategoricalEncoder(name="c", source="user", vocab=["a", "b", "7"])],
                           numeric=[NumericEncoder(name="x", source="item", clip_min=0.0, clip_max=10.0)])


def test_describe_records_shares_that_the_same_rows_reproduce() -> None:
    rng = np.random.default_rng(0)
    table = pa.table({"c": pa.array(rng.choice(["a", "b", "7", "zz", None], 10_000).tolist()),
                      "x": pa.array(np.where(rng.random(10_000) < 0.1, np.nan, rng.uniform(0, 10, 10_000)))})
    dist = describe(table, _encoders())
    c, x = dist.categorical["c"], dist.numeric["x"]
    assert c.oov == pytest.approx(0.2, abs=0.02) and c.missing == pytest.approx(0.2, abs=0.02)
    assert len(x.edges) == 9 and x.missing == pytest.approx(0.1, abs=0.01)
    assert psi(x.expected(), x.bins(table.column("x").to_numpy(zero_copy_only=False))) < 1e-4
    verdict = judge_categorical(_encoders().categorical[0], c, table.column("c"), None, Thresholds())
    assert verdict.psi < 1e-4 and verdict.status == "ok"
    # ints as the vocabulary's canonical strings ("7"), a new value as OOV
    shifted = pa.array([7] * 500 + [99] * 500)
    verdict = judge_categorical(_encoders().categorical[0], c, pa.chunked_array([shifted]), None, Thresholds())
    assert verdict.oov == 0.5 and verdict.status == "alert" and "oov" in verdict.note
