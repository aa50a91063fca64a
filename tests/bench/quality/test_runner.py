"""The benchmark runner trains exactly what training.fit.train.train() trains."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.quality.runner import Job, in_job_order, job_spec, prepared, run_job, with_overrides
from training.data.demo import DemoConfig, write_demo
from training.fit.train import train
from training.spec import load_spec

DEMO_SPEC = Path(__file__).resolve().parents[3] / "configs" / "demo.yaml"


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-small")
    write_demo(out, DemoConfig(rows=4_000, seed=0))
    return out


def test_overrides_replace_fields_and_reject_unknown_ones() -> None:
    spec = load_spec(DEMO_SPEC, data_path="unused")
    changed = with_overrides(spec, {"model.expert_dropout": 0.3, "train.seed": 7})
    assert (changed.model.expert_dropout, changed.train.seed) == (0.3, 7)
    assert spec.model.expert_dropout != 0.3 or spec.train.seed != 7  # the original is untouched
    with pytest.raises(KeyError):
        with_overrides(spec, {"model.expert_dropuot": 0.3})
    with pytest.raises(ValueError):
        with_overrides(spec, {"model.expert_dropout": 1.5})  # still validated


def test_another_numeric_embedding_drops_the_bins_of_the_specs_own() -> None:
    spec = load_spec(DEMO_SPEC, data_path="unused")
    assert (spec.model.numeric_embedding, spec.model.numeric_bins) == ("ple_auto", 16)
    for kind, bins in [("none", None), ("periodic", None), ("ple", 16)]:
        changed = with_overrides(spec, {"model.numeric_embedding": kind})
        assert (changed.model.numeric_embedding, changed.model.numeric_bins) == (kind, bins)
    assert with_overrides(spec, {"model.numeric_embedding": "ple", "model.numeric_bins": 8}).model.numeric_bins == 8


def test_run_job_matches_train(small_demo: Path) -> None:
    overrides = {"train.epochs": 2, "train.seed": 3, "train.threads": 1}
    job = Job(str(DEMO_SPEC), str(small_demo), overrides, "x")
    prepared(job_spec(job))  # a warm cache must not change the result
    rec = run_job(job)
    ref = train(job_spec(job), progress=False, eval_test=True)
    assert rec["epochs"] == len(ref.history)
    for task, m in ref.metrics["test"]["tasks"].items():
        got = rec["metrics"]["test"]["tasks"][task]
        assert set(got) == set(m)
        for key in {"auc", "log_loss", "rmse", "rmse_log1p", "ndcg", "observed"} & set(m):
            assert got[key] == pytest.approx(m[key], rel=1e-6, nan_ok=True), (task, key)
        assert got.get("skill", {}) == pytest.approx(m.get("skill", {}), rel=1e-6)
    assert rec["metrics"]["test"]["ndcg@10"] == pytest.approx(ref.metrics["test"]["ndcg@10"], rel=1e-6)


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_in_job_order_whatever_the_workers(workers: int) -> None:
    assert list(in_job_order(abs, [-3, 1, -2, 5], workers)) == [3, 1, 2, 5]
