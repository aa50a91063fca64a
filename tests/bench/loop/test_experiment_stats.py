"""bench/loop/experiment_stats.py runs small: a known effect inside its interval, and the naive interval narrower."""

import json

from bench.loop.experiment_stats import EFFECT, measure, render, simulate, summary, true_difference


def test_simulated_traffic_has_the_known_effect():
    log = simulate(0, users=3000, effect=0.05)
    click = log.labels["click"]
    diff = click[log.arm == 1].mean() - click[log.arm == 0].mean()
    assert abs(diff - 0.05) < 0.02 and abs(true_difference(EFFECT) - EFFECT) < 1e-6


def test_benchmark_runs_small_and_renders():
    results = measure(runs=4, users=2000, resamples=300)
    s = summary(results)
    assert s["runs"] == 4 and s["coverage"] >= 0.5 and s["aa_quiet"] >= 0.5
    assert s["naive_width"] < 0.7 * s["width"]  # the users' correlated rows: clustering widens the interval
    assert json.loads(json.dumps(results)) == results  # what the benchmark saves under bench/results/
    text = render(results)
    assert "bootstrap by user" in text and "of 4" in text


def test_written_joined_log_is_what_the_report_reads(tmp_path):
    from typer.testing import CliRunner

    from bench.loop.experiment_stats import write_joined
    from tests.conftest import DEMO_SPEC
    from training.cli import app

    write_joined(tmp_path / "joined", users=400)
    out = CliRunner().invoke(app, ["experiment", "report", str(tmp_path / "joined"), "--spec", str(DEMO_SPEC),
                                   "--expected", "control=0.5,tuned=0.5", "--out", str(tmp_path / "r"),
                                   "--bootstrap", "200"])
    assert out.exit_code == 0, out.output
    assert "| tuned |" in out.stdout and "No observed label in any arm: watch_time, like, rating." in out.stdout
