"""`ranker experiment report` end to end on pyarrow-written joined logs."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from typer.testing import CliRunner

from tests.conftest import DEMO_SPEC
from tests.training.experiments.conftest import joined_table, write_partitioned
from training.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["experiment", "report", *[str(a) for a in args]])


def weights_file(tmp_path, share: float):
    doc = {"profiles": {"default": {"click": {"weight": 1.0}}, "tuned": {"click": {"weight": 1.0},
                                                                          "like": {"weight": 0.5}}},
           "experiments": {"name": "exp-1", "arms": {"tuned": share}}}
    path = tmp_path / "weights.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_report_end_to_end(tmp_path):
    root = write_partitioned(joined_table(seed=2, users=800, effect=0.1), tmp_path / "joined")
    out = invoke(root, "--spec", DEMO_SPEC, "--weights", weights_file(tmp_path, 0.5), "--out", tmp_path / "r",
                 "--bootstrap", 300)
    assert out.exit_code == 0, out.output
    for name in ("report.md", "report.json", "report.png"):
        assert (tmp_path / "r" / name).stat().st_size > 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["comparisons"]["tuned"]["click"]["verdict"] == "better"
    assert report["srm"]["mismatch"] is False
    assert "## click: rate over observed rows" in out.stdout and "**better**" in out.stdout
    # The same log against a configured 10 % arm: a loud sample-ratio warning, still a report (exit 0).
    skewed = invoke(root, "--spec", DEMO_SPEC, "--weights", weights_file(tmp_path, 0.1), "--out", tmp_path / "s",
                    "--bootstrap", 100)
    assert skewed.exit_code == 0 and "SAMPLE RATIO MISMATCH" in skewed.stdout and "SAMPLE RATIO" in skewed.stderr


def test_a_missing_label_column_is_named(tmp_path):
    table = joined_table(seed=0).drop_columns(["like"])
    path = tmp_path / "joined.parquet"
    pq.write_table(table, path)
    out = invoke(path, "--spec", DEMO_SPEC, "--out", tmp_path / "r")
    assert out.exit_code == 2 and "no column 'like'" in out.stderr, out.output


def test_a_label_column_that_is_not_numeric_is_named(tmp_path):
    table = joined_table(seed=0)
    table = table.set_column(table.schema.get_field_index("click"), "click",
                             pa.array(["yes"] * table.num_rows))
    pq.write_table(table, tmp_path / "joined.parquet")
    out = invoke(tmp_path / "joined.parquet", "--spec", DEMO_SPEC, "--out", tmp_path / "r")
    assert out.exit_code == 2 and "'click' (the label of task 'click') is string, not numeric" in out.stderr, out.output


def test_bad_input_exits_2_naming_it(tmp_path):
    root = write_partitioned(joined_table(seed=0), tmp_path / "joined")
    absent = invoke(root, "--spec", DEMO_SPEC, "--control", "nobody", "--out", tmp_path / "r")
    assert absent.exit_code == 2 and "control arm 'nobody'" in absent.stderr
    by = invoke(root.parent / "old.parquet", "--spec", DEMO_SPEC)
    assert by.exit_code == 2 and "no such file" in by.stderr
    pq.write_table(joined_table(seed=0).drop_columns(["model_role"]), tmp_path / "old.parquet")
    role = invoke(tmp_path / "old.parquet", "--spec", DEMO_SPEC, "--by", "model_role")
    assert role.exit_code == 2 and "no column 'model_role'" in role.stderr
    shares = invoke(root, "--spec", DEMO_SPEC, "--expected", "control=0.5,tuned=lots")
    assert shares.exit_code == 2 and "'tuned=lots'" in shares.stderr
    stray = invoke(root, "--spec", DEMO_SPEC, "--expected", "control=1", "--out", tmp_path / "r")
    assert stray.exit_code == 2 and "arm 'tuned'" in stray.stderr


def test_model_versions_with_expected_shares(tmp_path):
    table = pa.concat_tables([joined_table(seed=0, users=950, version=3),
                              joined_table(seed=1, users=50, version=4, role="canary")])
    root = write_partitioned(table, tmp_path / "joined")
    out = invoke(root, "--spec", DEMO_SPEC, "--by", "model_version", "--expected", "3=0.95,4=0.05",
                 "--out", tmp_path / "r", "--bootstrap", 200)
    assert out.exit_code == 0, out.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["control"] == "3" and report["srm"]["observed"] == {"3": 950, "4": 50}


def test_start_and_end_select_the_rows_served_in_the_window(tmp_path):
    """A log holding two experiments on two days: the window picks one (a closed loop reads each phase)."""
    day_ms = 86_400_000
    first = joined_table(seed=1, experiment="exp-1")
    second = joined_table(seed=2, experiment="exp-2", effect=0.2)
    second = second.set_column(second.schema.get_field_index("ts"), "ts",
                               pa.compute.add(second["ts"], pa.scalar(day_ms, pa.duration("ms"))))
    root = write_partitioned(first, tmp_path / "joined", "2025-12-06")
    write_partitioned(second, root, "2025-12-07")
    both = invoke(root, "--spec", DEMO_SPEC, "--out", tmp_path / "r", "--bootstrap", 100)
    assert both.exit_code == 2 and "--experiment" in both.stderr
    out = invoke(root, "--spec", DEMO_SPEC, "--out", tmp_path / "r", "--bootstrap", 100,
                 "--start", "2025-12-07T00:00:00")
    assert out.exit_code == 0, out.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["experiment"] == "exp-2" and report["counts"]["rows_read"] == second.num_rows
    early = invoke(root, "--spec", DEMO_SPEC, "--out", tmp_path / "e", "--bootstrap", 100, "--end", "2025-12-07")
    assert early.exit_code == 0, early.output
    assert json.loads((tmp_path / "e" / "report.json").read_text())["experiment"] == "exp-1"
    bad = invoke(root, "--spec", DEMO_SPEC, "--out", tmp_path / "b", "--start", "yesterday")
    assert bad.exit_code == 2 and "--start: 'yesterday' is not an ISO date" in bad.stderr
