"""The report's numbers from a joined log: shadow rows, arms, NDCG of the served lists, control."""

import numpy as np
import pyarrow as pa
import pytest

from tests.training.experiments.conftest import joined_table, write_partitioned
from training.experiments.joined import ExperimentError, read_joined
from training.experiments.report import analyze


def test_shadow_rows_are_left_out(tmp_path, spec):
    shown = joined_table(seed=0)
    shadow = joined_table(seed=1, role="shadow", effect=0.9)  # every shadow row clicked: would move the rates
    root = write_partitioned(pa.concat_tables([shown, shadow]), tmp_path / "both")
    alone = write_partitioned(shown, tmp_path / "shown")
    both = analyze(read_joined(root, spec), spec, resamples=200)
    plain = analyze(read_joined(alone, spec), spec, resamples=200)
    assert both["counts"]["shadow_rows"] == shadow.num_rows
    assert both["counts"]["rows"] == shown.num_rows
    assert both["arms"] == plain["arms"] and both["comparisons"] == plain["comparisons"]


def test_older_logs_without_model_role_are_all_current(tmp_path, spec):
    table = joined_table(seed=0)
    table = table.drop_columns(["model_role"])
    log = read_joined(write_partitioned(table, tmp_path / "old"), spec)
    assert log.counts["shadow_rows"] == 0 and log.counts["rows"] == table.num_rows


def _lists(tmp_path, clicks_by_request, users):
    """One row per served candidate of the given requests (clicks in served order), arm control."""
    base = joined_table(seed=0, users=1)
    rows = [{**base.slice(0, 1).to_pylist()[0], "request_id": f"r{r}", "user_key": users[r], "position": p + 1,
             "click": float(c), "like": None, "arm": "control"}
            for r, clicks in enumerate(clicks_by_request) for p, c in enumerate(clicks)]
    return write_partitioned(pa.Table.from_pylist(rows, schema=base.schema), tmp_path / "lists")


def test_ndcg_of_the_served_lists_is_averaged_per_user_then_over_users(tmp_path, spec):
    # u1: a click at position 2 (NDCG 1/log2(3)) and one at position 1 (1.0); u2: a click at position 3 (0.5).
    root = _lists(tmp_path, [[0, 1, 0], [1, 0, 0], [0, 0, 1]], users=["u1", "u1", "u2"])
    report = analyze(read_joined(root, spec), spec, resamples=200)
    u1 = (1 / np.log2(3) + 1.0) / 2
    assert report["arms"]["control"]["ndcg"]["value"] == pytest.approx((u1 + 0.5) / 2)
    assert report["arms"]["control"]["ndcg"]["users"] == 2


def test_a_known_effect_is_found_and_its_arm_compared_with_control(tmp_path, spec):
    root = write_partitioned(joined_table(seed=3, users=3000, effect=0.15), tmp_path / "effect")
    report = analyze(read_joined(root, spec), spec, expected={"control": 0.5, "tuned": 0.5}, resamples=500)
    click = report["comparisons"]["tuned"]["click"]
    assert click["verdict"] == "better" and click["difference"]["lo"] < 0.15 < click["difference"]["hi"]
    assert report["srm"]["mismatch"] is False and not report["warnings"]
    skewed = analyze(read_joined(root, spec), spec, expected={"control": 0.7, "tuned": 0.3}, resamples=100)
    assert skewed["srm"]["mismatch"] and skewed["warnings"][0].startswith("SAMPLE RATIO MISMATCH")


def test_several_experiments_need_a_name(tmp_path, spec):
    root = write_partitioned(pa.concat_tables([joined_table(seed=0), joined_table(seed=1, experiment="exp-2")]),
                             tmp_path / "two")
    with pytest.raises(ExperimentError, match="several experiments"):
        read_joined(root, spec)
    log = read_joined(root, spec, experiment="exp-2")
    assert log.experiment == "exp-2" and log.counts["rows"] == joined_table(seed=1).num_rows


def test_rows_without_an_arm_are_counted_out(tmp_path, spec):
    table = joined_table(seed=0)
    arm = np.array(table["arm"].to_pylist(), dtype=object)
    arm[:10] = None  # the first two requests (5 candidates each) named their profile
    table = table.set_column(table.schema.get_field_index("arm"), "arm", pa.array(list(arm), pa.string()))
    log = read_joined(write_partitioned(table, tmp_path / "t"), spec)
    assert log.counts["excluded_requests_no_arm"] == 2 and log.counts["rows"] == table.num_rows - 10


def test_model_versions_compare_the_canary_with_current(tmp_path, spec):
    current = joined_table(seed=0, version=3, role="current")
    canary = joined_table(seed=1, version=4, role="canary", effect=0.2)
    root = write_partitioned(pa.concat_tables([current, canary]), tmp_path / "canary")
    report = analyze(read_joined(root, spec, by="model_version"), spec, by="model_version", resamples=300)
    assert report["control"] == "3" and list(report["comparisons"]) == ["4"]
    assert report["comparisons"]["4"]["click"]["verdict"] == "better"
    with pytest.raises(ExperimentError, match="control arm '7'"):
        analyze(read_joined(root, spec, by="model_version"), spec, by="model_version", control="7")


def test_the_specs_request_and_time_columns_are_read(tmp_path, spec):
    table = joined_table(seed=0).rename_columns({"request_id": "rid", "ts": "when"})
    root = write_partitioned(table, tmp_path / "renamed")
    renamed = spec.model_copy(deep=True)
    renamed.data.request_id, renamed.data.timestamp = "rid", "when"
    log = read_joined(root, renamed)
    assert log.window["start"].startswith("2025-12-06") and log.counts["rows"] == table.num_rows
    with pytest.raises(ExperimentError, match="no column 'request_id'"):
        read_joined(root, spec)


def test_roles_lower_better_and_users_in_two_arms(tmp_path, spec):
    current = joined_table(seed=0, role="current")
    canary = joined_table(seed=0, role="canary", effect=0.3)  # the same users (seed 0) in both roles
    root = write_partitioned(pa.concat_tables([current, canary]), tmp_path / "roles")
    report = analyze(read_joined(root, spec, by="model_role"), spec, by="model_role", resamples=200,
                     lower_better=("click",))
    assert report["control"] == "current" and report["comparisons"]["canary"]["click"]["verdict"] == "worse"
    assert "appear in more than one arm" in report["warnings"][0]
    with pytest.raises(ExperimentError, match="--lower-better 'clicks'"):
        analyze(read_joined(root, spec, by="model_role"), spec, by="model_role", lower_better=("clicks",))
