"""Your own split (issue 9, items 4 and 5): pre-split files, a split column, a seeded random split,
no test split at all, and data without a timestamp or request id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.conftest import DEMO_SPEC
from training.data import DataError
from training.data import splits as S
from training.data.demo import DemoConfig, generate
from training.spec import RankerSpec, SpecError, load_spec


@pytest.fixture(scope="module")
def small_table() -> pa.Table:
    return generate(DemoConfig(rows=3_000, seed=5))


def demo_spec(tmp_path: Path, data: dict) -> RankerSpec:
    """The demo spec with its data section replaced (written to a file, as a user would)."""
    import yaml

    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["data"] = data
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def write(table: pa.Table, path: Path) -> str:
    pq.write_table(table, path)
    return path.name  # relative to the spec's folder, like a user's spec


def ids(table: pa.Table | None) -> set:
    return set() if table is None else set(table.column("request_id").to_pylist())


def test_time_split_keeps_contiguous_requests_whole_and_ordered(small_table: pa.Table, tmp_path: Path) -> None:
    spec = demo_spec(tmp_path, {"path": write(small_table, tmp_path / "all.parquet"), "timestamp": "ts",
                                "request_id": "request_id", "item_id": "item_id"})
    s = S.load_splits(spec)
    assert s.method == "by time" and not s.warnings
    assert not (ids(s.train) & ids(s.valid)) and not (ids(s.valid) & ids(s.test))
    assert s.train.column("ts")[-1].as_py() <= s.valid.column("ts")[0].as_py() <= s.test.column("ts")[0].as_py()
    assert s.train.num_rows + s.valid.num_rows + s.test.num_rows == small_table.num_rows


def test_pre_split_files_are_used_as_given(small_table: pa.Table, tmp_path: Path) -> None:
    parts = {name: small_table.slice(a, b) for name, a, b in (("train", 0, 2000), ("valid", 2000, 500),
                                                               ("test", 2500, 500))}
    data = {name: write(t, tmp_path / f"{name}.parquet") for name, t in parts.items()}
    s = S.load_splits(demo_spec(tmp_path, {**data, "request_id": "request_id"}))
    assert s.method == "from files"
    for name, table in parts.items():
        assert getattr(s, name).equals(table.select(getattr(s, name).column_names))


def test_test_file_is_optional_and_valid_is_carved_from_train(small_table: pa.Table, tmp_path: Path) -> None:
    spec = demo_spec(tmp_path, {"train": write(small_table, tmp_path / "train.parquet"), "request_id": "request_id",
                                "valid_fraction": 0.2, "seed": 3})
    s = S.load_splits(spec)
    assert s.test is None and s.method == "from files, valid carved from train at random (seed 3)"
    assert not (ids(s.train) & ids(s.valid))
    assert s.valid.num_rows == pytest.approx(0.2 * small_table.num_rows, rel=0.05)


def test_split_column_assigns_rows(small_table: pa.Table, tmp_path: Path) -> None:
    fold = np.where(np.arange(small_table.num_rows) % 5 == 0, "valid", "train")
    table = small_table.append_column("fold", pa.array(fold))
    s = S.load_splits(demo_spec(tmp_path, {"path": write(table, tmp_path / "all.parquet"), "split_column": "fold"}))
    assert s.test is None and s.valid.num_rows == int((fold == "valid").sum())
    bad = table.set_column(table.num_columns - 1, "fold", pa.array(np.where(fold == "valid", "holdout", fold)))
    with pytest.raises(DataError, match=r"'fold'.*train, valid or test.*holdout"):
        S.load_splits(demo_spec(tmp_path, {"path": write(bad, tmp_path / "bad.parquet"), "split_column": "fold"}))


def test_random_split_is_seeded_and_keeps_requests_whole(small_table: pa.Table, tmp_path: Path) -> None:
    def split(seed: int) -> S.Splits:
        return S.load_splits(demo_spec(tmp_path, {"path": write(small_table, tmp_path / "all.parquet"),
                                                  "request_id": "request_id", "seed": seed}))

    a, b, c = split(1), split(1), split(2)
    assert a.method == "at random (seed 1)"
    assert ids(a.test) == ids(b.test) and ids(a.test) != ids(c.test)
    assert not (ids(a.train) & ids(a.test)) and not (ids(a.train) & ids(a.valid)) and not a.warnings
    assert a.test.num_rows == pytest.approx(0.1 * small_table.num_rows, rel=0.15)


def test_no_timestamp_no_request_id_and_no_test_split(small_table: pa.Table, tmp_path: Path) -> None:
    """A plain table: rows split at random, no test split at all (test_fraction: 0 is allowed)."""
    plain = small_table.drop_columns(["ts", "request_id"])
    spec = demo_spec(tmp_path, {"path": write(plain, tmp_path / "plain.parquet"), "test_fraction": 0})
    s = S.load_splits(spec)
    assert s.test is None and s.train.num_rows + s.valid.num_rows == plain.num_rows
    assert s.valid.num_rows == pytest.approx(0.1 * plain.num_rows, abs=1)


def test_a_missing_optional_column_says_which_key_to_change(small_table: pa.Table, tmp_path: Path) -> None:
    plain = small_table.drop_columns(["ts"])
    spec = demo_spec(tmp_path, {"path": write(plain, tmp_path / "plain.parquet"), "timestamp": "ts"})
    with pytest.raises(DataError) as err:
        S.load_splits(spec)
    assert "'ts' (data.timestamp)" in str(err.value) and "leave the key out" in str(err.value)


@pytest.mark.parametrize(("data", "words"), [
    ({"path": "a.parquet", "train": "b.parquet"}, ["either path", "or train"]),
    ({"valid": "v.parquet"}, ["either path"]),
    ({"path": "a.parquet", "test": "t.parquet"}, ["valid and test files go with a train file"]),
    ({"path": "a.parquet", "split": "time"}, ["split: time needs a timestamp"]),
    ({"path": "a.parquet", "start": "2024-01-01"}, ["need data.timestamp"]),
    ({"train": "a.parquet", "test_fraction": 0.2}, ["test_fraction splits `path`"]),
    ({"path": "a.parquet", "split_column": "fold", "split": "random"}, ["split_column"]),
    ({"path": "a.parquet", "test_fraction": 0.6}, ["data.test_fraction"]),
])
def test_data_section_mistakes_name_the_key(tmp_path: Path, data: dict, words: list[str]) -> None:
    with pytest.raises(SpecError) as err:
        demo_spec(tmp_path, data)
    for word in words:
        assert word in str(err.value)


def test_too_few_rows_for_the_split_is_a_clear_error(small_table: pa.Table, tmp_path: Path) -> None:
    labelled = small_table.filter(pc.is_valid(small_table.column("rating")))  # every task has a label
    tiny = labelled.slice(0, 2).drop_columns(["ts", "request_id"])
    with pytest.raises(DataError, match="too few"):
        S.load_splits(demo_spec(tmp_path, {"path": write(tiny, tmp_path / "tiny.parquet"), "valid_fraction": 0.4,
                                           "test_fraction": 0.4}))


def test_split_column_rows_keep_their_values(small_table: pa.Table, tmp_path: Path) -> None:
    fold = np.where(np.arange(small_table.num_rows) % 4 == 0, "test", np.where(np.arange(small_table.num_rows) % 4 == 1,
                                                                                 "valid", "train"))
    table = small_table.append_column("fold", pa.array(fold))
    s = S.load_splits(demo_spec(tmp_path, {"path": write(table, tmp_path / "all.parquet"), "split_column": "fold"}))
    for name in ("train", "valid", "test"):
        assert pc.all(pc.equal(getattr(s, name).column("fold"), name)).as_py()
