import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.contract.features import (
    OOV_INDEX,
    CategoricalEncoder,
    FeatureEncoders,
    NumericEncoder,
    category_key,
)


def encoders() -> FeatureEncoders:
    return FeatureEncoders(
        categorical=[
            CategoricalEncoder(name="user_id", source="user", vocab=["u1", "u2"]),
            CategoricalEncoder(name="item_id", source="item", vocab=["i1", "i2", "7"]),
        ],
        numeric=[
            NumericEncoder(name="hour", source="context", mean=12.0, std=6.0, fill_value=12.0),
            NumericEncoder(name="pop", source="item", transform="log1p", mean=1.0, std=2.0, fill_value=0.0),
        ],
    )


def test_unknown_and_missing_categories_map_to_oov():
    enc = encoders().categorical[1]
    assert enc.encode(["i1", "i2", "nope", None]).tolist() == [1, 2, OOV_INDEX, OOV_INDEX]


def test_integers_floats_and_strings_share_one_key():
    enc = encoders().categorical[1]
    assert enc.encode([7, 7.0, "7", np.int64(7)]).tolist() == [3, 3, 3, 3]
    assert category_key(True) == "true" and category_key(float("nan")) is None


def test_a_number_matches_only_its_canonical_string():
    """As docs/HTTP.md's request rules say: 5 and 5.0 are "5"; "05", 5.5 and "True" are other categories."""
    enc = CategoricalEncoder(name="c", source="item", vocab=["5", "2.5", "true"])
    assert enc.encode([5, 5.0, "5", 2.5, True]).tolist() == [1, 1, 1, 2, 3]
    assert enc.encode(["05", 5.5, "True", 1, "2.50"]).tolist() == [OOV_INDEX] * 5


def test_numeric_standardizes_after_transform_and_fills_missing():
    enc = encoders().numeric[1]
    got = enc.encode([np.e - 1, None, float("nan")])
    np.testing.assert_allclose(got, [(1 - 1) / 2, (0 - 1) / 2, (0 - 1) / 2], rtol=1e-6)
    assert got.dtype == np.float32


def test_request_broadcasts_user_and_context_and_reads_items():
    out = encoders().encode_request({"user_id": "u2"}, {"hour": 18}, [{"item_id": "i2", "pop": 0}, {"item_id": "x"}])
    assert out["categorical"].tolist() == [[2, 2], [2, OOV_INDEX]]
    np.testing.assert_allclose(out["numeric"][:, 0], [1.0, 1.0])
    assert out["categorical"].dtype == np.int64 and out["numeric"].dtype == np.float32


def test_request_and_column_encoding_agree():
    """The server's per-request path and the trainer's column path are the same function."""
    enc = encoders()
    cands = [{"item_id": i, "pop": p} for i, p in [("i1", 3.0), ("zz", None), ("7", 1.5)]]
    by_request = enc.encode_request({"user_id": "u1"}, {"hour": 3}, cands)
    by_columns = enc.encode_columns(
        {"user_id": ["u1"] * 3, "hour": [3, 3, 3], "item_id": ["i1", "zz", "7"], "pop": [3.0, None, 1.5]}, 3
    )
    for k in by_request:
        np.testing.assert_array_equal(by_request[k], by_columns[k])


def test_duplicate_feature_names_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        FeatureEncoders(
            categorical=[CategoricalEncoder(name="a", source="user", vocab=[])],
            numeric=[NumericEncoder(name="a", source="item")],
        )


@given(st.lists(st.one_of(st.text(max_size=5), st.integers(-5, 5), st.none()), max_size=50))
def test_categorical_codes_always_in_range(values):
    enc = CategoricalEncoder(name="c", source="item", vocab=["a", "1", ""])
    codes = enc.encode(values)
    assert codes.shape == (len(values),)
    assert ((codes >= 0) & (codes < enc.cardinality)).all()


def test_numeric_values_are_clipped_to_the_range_seen_in_training():
    """Issue 9, item 3: a value beyond the training range encodes as the nearest value training saw."""
    enc = NumericEncoder(name="year", source="item", mean=1990.0, std=10.0, fill_value=1990.0,
                         clip_min=1920.0, clip_max=2000.0)
    got = enc.encode([1e308, -1e308, 1e30, 1995.0, None])
    np.testing.assert_allclose(got, [1.0, -7.0, 1.0, 0.5, 0.0])
    assert np.isfinite(got).all()


def test_clipped_values_are_counted_per_feature_when_asked():
    """Issue 21, item 5: `Age: 1e308` was clipped silently; the count is what the server exports."""
    year = NumericEncoder(name="year", source="item", mean=1990.0, std=10.0, fill_value=1990.0,
                          clip_min=1920.0, clip_max=2000.0)
    clipped: dict[str, int] = {}
    plain = year.encode([1e308, -1e308, 1920.0, 2000.0, 1995.0, None])
    counted = year.encode([1e308, -1e308, 1920.0, 2000.0, 1995.0, None], clipped)
    np.testing.assert_array_equal(plain, counted)
    assert clipped == {"year": 2}  # the range's own ends and a missing value (the fill) are not clipped
    year.encode_one(3000.0, clipped)
    year.encode([1990.0], clipped)
    assert clipped == {"year": 3}
    unclipped = NumericEncoder(name="old", source="item")  # a bundle from before clip ranges
    unclipped.encode([1e30], clipped)
    assert clipped == {"year": 3}


def test_encode_columns_counts_clipped_values_of_shared_and_item_columns():
    enc = FeatureEncoders(
        categorical=[CategoricalEncoder(name="item_id", source="item", vocab=["i1"])],
        numeric=[NumericEncoder(name="hour", source="context", clip_min=0.0, clip_max=23.0),
                 NumericEncoder(name="pop", source="item", clip_min=0.0, clip_max=50.0)])
    columns = enc.request_columns({}, {"hour": 99}, {"item_id": ["i1", "x", "y"], "pop": [60.0, -1.0, 3.0]}, 3)
    clipped: dict[str, int] = {}
    counted = enc.encode_columns(columns, 3, clipped)
    assert clipped == {"hour": 1, "pop": 2}  # a user or context value counts once per request
    for k, v in enc.encode_columns(columns, 3).items():
        np.testing.assert_array_equal(v, counted[k])
