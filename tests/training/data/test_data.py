"""Data that does not fit the spec is refused with the column and the problem, by the API and the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tests.conftest import DEMO_SPEC
from training import data as D
from training.cli import app
from training.data.demo import DemoConfig, generate
from training.spec import load_spec


@pytest.fixture(scope="module")
def small_table() -> pa.Table:
    return generate(DemoConfig(rows=2_000, seed=3))


def replace(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


BAD_DATA: dict[str, tuple[Callable[[pa.Table], pa.Table], list[str]]] = {
    "missing column": (lambda t: t.drop_columns(["item_category"]), ["item_category", "missing"]),
    "numeric feature as text": (
        lambda t: replace(t, "user_activity", t.column("user_activity").cast(pa.string())),
        ["user_activity", "numeric", "string"]),
    "categorical feature as float": (
        lambda t: replace(t, "device", pa.array(np.ones(t.num_rows))),
        ["device", "categorical", "double"]),
    "task without any label": (
        lambda t: replace(t, "like", pa.nulls(t.num_rows, pa.int8())), ["like", "no labels"]),
    "numeric feature all NaN/inf": (
        lambda t: replace(t, "title_caps_ratio", pa.array(np.where(np.arange(t.num_rows) % 2, np.nan, np.inf))),
        ["title_caps_ratio", "no finite values"]),
    "binary label not 0/1": (
        lambda t: replace(t, "click", pa.array(np.where(np.arange(t.num_rows) == 5, 2, 0).astype(np.int8))),
        ["click", "other than 0/1"]),
    "label with inf": (
        lambda t: replace(t, "rating", pa.array(np.full(t.num_rows, np.inf))), ["rating", "NaN or inf"]),
    "label text": (
        lambda t: replace(t, "rating", t.column("rating").cast(pa.string())), ["rating", "numeric"]),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_is_refused_naming_column_and_problem(case: str, small_table: pa.Table, tmp_path: Path) -> None:
    mutate, words = BAD_DATA[case]
    path = tmp_path / "bad.parquet"
    pq.write_table(mutate(small_table), path)
    with pytest.raises(D.DataError) as err:
        D.load_table(load_spec(DEMO_SPEC, data_path=str(path)))
    for word in words:
        assert word in str(err.value), (word, str(err.value))


@pytest.mark.parametrize("case", ["missing column", "task without any label", "binary label not 0/1"])
def test_cli_train_exits_nonzero_with_the_message(case: str, small_table: pa.Table, tmp_path: Path) -> None:
    mutate, words = BAD_DATA[case]
    path = tmp_path / "bad.parquet"
    pq.write_table(mutate(small_table), path)
    result = CliRunner().invoke(app, ["train", str(DEMO_SPEC), "--data", str(path), "--out",
                                      str(tmp_path / "bundle"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "error:" in result.stderr
    for word in words:
        assert word in result.stderr
    assert not (tmp_path / "bundle").exists()


def test_no_such_data_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(D.DataError, match="nothing-here"):
        D.load_table(load_spec(DEMO_SPEC, data_path=str(tmp_path / "nothing-here" / "*.parquet")))


def test_null_labels_become_masked_not_zero(small_table: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "ok.parquet"
    pq.write_table(small_table, path)
    spec = load_spec(DEMO_SPEC, data_path=str(path))
    table = D.load_table(spec)
    enc = D.fit_encoders(table, spec)
    e = D.encode(table, enc, spec, D.fit_label_scalers(table, spec))
    names = spec.task_names()
    like = table.column("like")
    assert e.mask[:, names.index("like")].sum() == len(like) - like.null_count
    assert np.isnan(e.raw_labels[~e.mask]).all()
    assert (e.labels[~e.mask] == 0).all()  # a safe training target, never seen by the loss


@pytest.mark.parametrize("missing", ["zero", "skip"])
def test_a_row_without_any_gain_label_ranks_at_gain_zero_unless_skipped(small_table: pa.Table, missing: str) -> None:
    """The ranking head's gain over like alone: a row never liked nor disliked (like null) is in its list at
    gain 0 by default, as NDCG@k and LambdaMART count it; missing_gain: skip leaves it out (masked)."""
    spec = load_spec(DEMO_SPEC)
    rank = next(t for t in spec.tasks if t.listwise)
    rank.gain, rank.missing_gain = {"like": 2.0}, missing
    labels = D.raw_labels(small_table, spec)
    like = small_table.column("like").to_numpy(zero_copy_only=False).astype(float)
    gain = labels[:, spec.task_names().index(rank.name)]
    unseen = np.isnan(like)
    assert unseen.any() and np.array_equal(gain[~unseen], 2.0 * like[~unseen])
    assert (np.isnan(gain[unseen]).all() if missing == "skip" else (gain[unseen] == 0).all())
