import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.contract.bundle import ScoreStats, TaskInfo
from service.profiles import WeightsError, compile_weights, parse_weights

TASKS = [
    TaskInfo(name="click", type="binary", group="engagement", output="click",
             score_stats=ScoreStats(mean=0.3, std=0.1, min=0.1, max=0.7)),
    TaskInfo(name="watch_time", type="regression", group="engagement", output="watch_time",
             score_stats=ScoreStats(mean=70.0, std=30.0, min=5.0, max=130.0)),
    TaskInfo(name="rating", type="regression", group="satisfaction", output="rating"),  # no stats
    TaskInfo(name="like", type="binary", group="satisfaction", output="like"),  # no stats
]
HEADS = {"click": np.array([0.2, 0.5], np.float32), "watch_time": np.array([100.0, 10.0], np.float32),
         "rating": np.array([4.0, 2.0], np.float32), "like": np.array([0.9, 0.1], np.float32)}
LOG_EPS = 1e-6  # the floor docs/WEIGHTS.md states for the log transform


def compiled(text: str):
    return compile_weights(parse_weights(text), TASKS)


def test_formula_for_each_transform():
    w = compiled("""
profiles:
  default:
    click: 2.0
    watch_time: {weight: 0.5, transform: log1p}
  z: {click: {weight: 1, transform: zscore}, watch_time: {weight: 3, transform: minmax}}
""")
    got = w.profile(None).combine(HEADS)
    expected = 2.0 * HEADS["click"].astype(float) + 0.5 * np.log1p(HEADS["watch_time"].astype(float))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    got = w.profile("z").combine(HEADS)
    expected = (HEADS["click"] - 0.3) / 0.1 + 3 * (HEADS["watch_time"] - 5.0) / 125.0
    np.testing.assert_allclose(got, expected.astype(float), rtol=1e-6)


def test_log_is_the_log_of_a_probability_floored_at_eps():
    w = compiled("profiles: {default: {click: {weight: 2, transform: log}}}")
    heads = {"click": np.array([0.2, 1.0, 0.0, 1e-9, 3e-6], np.float32)}
    expected = 2.0 * np.log(np.maximum(heads["click"].astype(np.float64), LOG_EPS))
    np.testing.assert_array_equal(w.profile(None).combine(heads), expected)
    assert np.all(np.isfinite(w.profile(None).combine(heads)))  # a head that rounds to 0 still ranks


def test_log_of_two_heads_ranks_by_their_product_with_weights_as_exponents():
    rng = np.random.default_rng(0)
    heads = {"click": rng.uniform(1e-4, 1, 500).astype(np.float32), "like": rng.uniform(1e-4, 1, 500).astype(np.float32)}
    p1, p2 = heads["click"].astype(np.float64), heads["like"].astype(np.float64)
    product = compiled("profiles: {default: {click: {weight: 1, transform: log}, like: {weight: 1, transform: log}}}")
    score = product.profile(None).combine(heads)
    np.testing.assert_allclose(np.exp(score), p1 * p2, rtol=1e-12)
    np.testing.assert_array_equal(np.argsort(-score, kind="stable"), np.argsort(-(p1 * p2), kind="stable"))
    powered = compiled("profiles: {default: {click: {weight: 2, transform: log}, like: {weight: 0.5, transform: log}}}")
    np.testing.assert_allclose(np.exp(powered.profile(None).combine(heads)), p1**2 * p2**0.5, rtol=1e-12)


@pytest.mark.parametrize("task", ["watch_time", "rating"])
def test_log_on_a_regression_head_is_refused_naming_profile_task_and_transform(task):
    weights = parse_weights(f"profiles: {{default: {{click: 1}}, prod: {{{task}: {{weight: 1, transform: log}}}}}}")
    with pytest.raises(WeightsError, match=rf"profiles\.prod\.{task}\.transform: log .*'{task}' is a regression head"):
        compile_weights(weights, TASKS)


def test_log_on_a_ranking_head_is_refused():
    # A ranking head's scores are unbounded: the rule is "binary heads only".
    ranking = TaskInfo(name="order", type="ranking", group="ranking", output="order")
    weights = parse_weights("profiles: {default: {order: {weight: 1, transform: log}}}")
    with pytest.raises(WeightsError, match=r"profiles\.default\.order\.transform: log .*'order' is a ranking head"):
        compile_weights(weights, [*TASKS, ranking])


def test_exponent_weights_that_yaml_reads_as_strings_are_numbers():
    w = parse_weights("profiles: {default: {click: 1e-3, like: {weight: 2e-3}}}")
    assert w.file.profiles["default"].root["click"].weight == 0.001


def test_zero_weight_terms_are_dropped_and_unknown_profile_is_none():
    w = compiled("profiles: {default: {click: 1, watch_time: 0}}")
    assert [t.task for t in w.profile("default").terms] == ["click"]
    assert w.profile("nope") is None


@pytest.mark.parametrize(("text", "key"), [
    ("profiles: {default: {click: -1}}", "profiles.default.click.weight"),
    ("profiles: {default: {click: .nan}}", "profiles.default.click.weight"),
    ("profiles: {default: {click: .inf}}", "profiles.default.click.weight"),
    ("profiles: {default: {click: yes}}", "profiles.default.click.weight"),
    ("profiles: {default: {click: high}}", "profiles.default.click.weight"),
    ("profiles: {default: {click: {weight: 1, transform: sqrt}}}", "profiles.default.click.transform"),
    ("profiles: {default: {click: {weight: 1, transfrom: log1p}}}", "profiles.default.click.transfrom"),
    ("profiles: {default: {click: 0}}", "profiles.default"),
    ("profiles: {other: {click: 1}}", "default_profile"),
    ("profiles: {}", "profiles"),
    ("profiles: {default: {click: 1}}\nextra: 1", "extra"),
])
def test_bad_files_are_refused_naming_the_key(text, key):
    with pytest.raises(WeightsError, match=rf"{key}: "):
        parse_weights(text)


def test_not_yaml_is_refused():
    with pytest.raises(WeightsError, match="not valid YAML"):
        parse_weights("profiles: [")


def test_unknown_task_is_refused_against_the_model():
    weights = parse_weights("profiles: {default: {click: 1}, b: {likes: 1}}")
    with pytest.raises(WeightsError, match=r"profiles\.b\.likes: unknown task 'likes'"):
        compile_weights(weights, TASKS)


def test_normalization_needs_score_stats():
    weights = parse_weights("profiles: {default: {rating: {weight: 1, transform: zscore}}}")
    with pytest.raises(WeightsError, match=r"profiles\.default\.rating\.transform: zscore needs score_stats"):
        compile_weights(weights, TASKS)


def test_sha256_identifies_content_and_generation_is_carried():
    a, b = parse_weights("profiles: {default: {click: 1}}", generation=7), parse_weights("profiles: {default: {click: 2}}")
    assert a.generation == 7 and a.sha256 != b.sha256 and len(a.sha256) == 64


@given(st.lists(st.floats(0, 10, allow_nan=False), min_size=3, max_size=3),
       st.lists(st.floats(0, 1e4, allow_nan=False, width=32), min_size=1, max_size=20))
def test_combination_is_linear_in_the_weights(weights, watch):
    text = f"profiles: {{default: {{click: {weights[0]!r}, watch_time: {{weight: {weights[1]!r}, transform: zscore}}, " \
           f"rating: {weights[2]!r}}}}}"
    if sum(weights) == 0:
        with pytest.raises(WeightsError):
            parse_weights(text)
        return
    heads = {"click": np.full(len(watch), 0.5, np.float32), "watch_time": np.asarray(watch, np.float32),
             "rating": np.full(len(watch), 3.0, np.float32)}
    got = compiled(text).profile(None).combine(heads)
    expected = weights[0] * 0.5 + weights[1] * (np.asarray(watch, np.float32).astype(float) - 70.0) / 30.0 + weights[2] * 3.0
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert not math.isnan(float(got.sum()))
