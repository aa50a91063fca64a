"""Numeric feature patterns (training/data/columns.py): `{name: "*"}` takes every other numeric column."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from training.data import DataError
from training.data.columns import expand_numeric_patterns
from training.spec import RankerSpec, SpecError, load_spec


@pytest.fixture
def wide(tmp_path: Path) -> Path:
    """A wide table: ids, a label, a string column and numeric measurements in a known order."""
    n = 8
    table = pa.table({
        "user": pa.array([f"u{i}" for i in range(n)]),
        "m_b": pa.array([float(i) for i in range(n)]),
        "click": pa.array([i % 2 for i in range(n)], pa.int8()),
        "note": pa.array(["x"] * n),
        "m_a": pa.array(list(range(n)), pa.int64()),
        "flag": pa.array([True] * n),
        "other": pa.array([0.5] * n),
    })
    pq.write_table(table, tmp_path / "train.parquet")
    return tmp_path


def spec_with(folder: Path, numeric: list[dict], lookup: dict | None = None) -> RankerSpec:
    raw = {"name": "wide", "data": {"train": "train.parquet"},
           "features": {"categorical": [{"name": "user", "source": "user"}], "numeric": numeric},
           "tasks": [{"name": "click", "type": "binary", "group": "engagement"}], **({"lookup": lookup} if lookup else {})}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(path)


def numeric_names(spec: RankerSpec) -> list[str]:
    return [f.name for f in spec.features.numeric]


def test_star_takes_every_unused_numeric_column_in_file_order_and_names_what_it_left_out(wide: Path) -> None:
    spec, notes = expand_numeric_patterns(spec_with(wide, [{"name": "*", "source": "item", "transform": "log1p"}]))
    # the label (click) and the categorical feature (user) are used elsewhere; note and flag are not numbers
    assert numeric_names(spec) == ["m_b", "m_a", "other"]
    assert {f.transform for f in spec.features.numeric} == {"log1p"}
    assert len(notes) == 1 and "3 numeric columns" in notes[0] and "left out: note, flag" in notes[0]


def test_named_features_and_exclusions_are_not_taken_twice(wide: Path) -> None:
    spec, _ = expand_numeric_patterns(spec_with(wide, [
        {"name": "other", "source": "context"}, {"name": "m_*", "source": "item", "exclude": ["m_b"]}]))
    assert numeric_names(spec) == ["other", "m_a"]
    assert spec.features.numeric[0].source == "context"
    same, notes = expand_numeric_patterns(spec)
    assert same is spec and notes == []  # nothing left to expand


def test_an_unknown_exclusion_names_the_column(wide: Path) -> None:
    with pytest.raises(DataError, match=r"exclude names \['m_c'\]"):
        expand_numeric_patterns(spec_with(wide, [{"name": "*", "source": "item", "exclude": ["m_c"]}]))


def test_a_pattern_without_numeric_columns_is_an_error(wide: Path) -> None:
    with pytest.raises(DataError, match=r"'zz\*': matches no numeric column"):
        expand_numeric_patterns(spec_with(wide, [{"name": "zz*", "source": "item"}]))
    with pytest.raises(DataError, match=r"'not\*':.*not numeric: \['note'\]"):
        expand_numeric_patterns(spec_with(wide, [{"name": "not*", "source": "item"}]))


def test_exclude_needs_a_pattern(wide: Path) -> None:
    with pytest.raises(SpecError, match="exclude: only a pattern name"):
        spec_with(wide, [{"name": "m_a", "source": "item", "exclude": ["m_b"]}])


def test_a_lookup_may_name_a_feature_a_pattern_gives(wide: Path) -> None:
    spec, _ = expand_numeric_patterns(spec_with(wide, [{"name": "m_*", "source": "item"}],
                                                {"item": {"features": ["m_a"]}}))
    assert numeric_names(spec) == ["m_b", "m_a"] and spec.lookup.item.features == ["m_a"]
    # A pattern of another source, or one the data does not fill in, still cannot give it.
    with pytest.raises(SpecError, match="'m_a' is not a feature with source item"):
        spec_with(wide, [{"name": "m_*", "source": "user"}], {"item": {"features": ["m_a"]}})
    with pytest.raises(DataError, match="'m_a' is not a feature with source item.*after expanding"):
        expand_numeric_patterns(spec_with(wide, [{"name": "m_*", "source": "item", "exclude": ["m_a"]}],
                                          {"item": {"features": ["m_a"]}}))
