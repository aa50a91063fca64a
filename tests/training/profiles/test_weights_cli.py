"""`ranker replay`, `ranker weights check|diff` and `ranker tune` on the tiny bundle and its demo log."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.registry import Registry
from training.cli import app

DEMO_WEIGHTS = Path(__file__).resolve().parents[3] / "configs" / "weights.yaml"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_replay_reports_every_profile_with_intervals_and_bounds(bundle_dir, tiny_dir):
    out = run("replay", bundle_dir, "--data", tiny_dir, "--weights", DEMO_WEIGHTS, "--json", "--resamples", "200")
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert set(result["profiles"]) == {"default", "balanced", "satisfaction_first", "engagement_first", "click_only"}
    assert set(result["bounds"]) == {"random", "oracle"}
    assert "ndcg@10:click" in result["metrics"] and "yield@10:watch_time" in result["metrics"]
    for profile, metrics in result["profiles"].items():
        for name, e in metrics.items():
            assert e["lo"] <= e["mean"] <= e["hi"], (profile, name)
            assert e["mean"] <= result["bounds"]["oracle"][name]["mean"] + 1e-12
    assert result["bounds"]["oracle"]["ndcg@10:like"]["mean"] == pytest.approx(1.0)
    # click_only ranks by the click head: better on clicks than a random order.
    click = result["profiles"]["click_only"]["ndcg@10:click"]["mean"]
    assert click > result["bounds"]["random"]["ndcg@10:click"]["mean"]


def test_replay_table_markdown_and_profile_selection(bundle_dir, tiny_dir):
    table = run("replay", bundle_dir, "--data", tiny_dir, "--weights", DEMO_WEIGHTS, "--resamples", "0",
                "--profile", "click_only")
    assert table.exit_code == 0 and "click_only" in table.stdout and "satisfaction_first" not in table.stdout
    md = run("replay", bundle_dir, "--data", tiny_dir, "--weights", DEMO_WEIGHTS, "--markdown", "--resamples", "0",
             "--label", "click=like", "--k", "5")
    assert md.exit_code == 0 and "| `default` |" in md.stdout and "ndcg@5:click" in md.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--request-id", "nope"], "missing column(s) ['nope']"),
    (["--profile", "nope"], "--profile: unknown profile(s) ['nope']"),
    (["--label", "clicks=click"], "--label: unknown task(s) ['clicks']"),
    (["--label", "click"], "write TASK=COLUMN"),
    (["--label", "click=device"], "the label of task 'click' must be numeric"),
])
def test_replay_errors_name_the_problem(bundle_dir, tiny_dir, args, message):
    out = run("replay", bundle_dir, "--data", tiny_dir, "--weights", DEMO_WEIGHTS, *args)
    assert out.exit_code == 2 and message in out.stderr, out.output


def test_weights_check_passes_the_demo_file_and_names_the_bad_key(bundle_dir, tmp_path):
    ok = run("weights", "check", DEMO_WEIGHTS, "--bundle", bundle_dir)
    assert ok.exit_code == 0 and "ok:" in ok.stdout and "satisfaction_first" in ok.stdout
    bad = tmp_path / "bad.yaml"
    for text, key in (("profiles: {default: {click: 1, likes: 1}}", "profiles.default.likes: unknown task"),
                      ("profiles: {default: {rating: {weight: 1, transform: cube}}}", "profiles.default.rating.transform"),
                      ("profiles: {default: {click: 1}}\nexperiments: {name: e, arms: {b: 0.5}}", "arms.b"),
                      ("profiles: [", "not valid YAML")):
        bad.write_text(text)
        out = run("weights", "check", bad, "--bundle", bundle_dir)
        assert out.exit_code == 1 and key in out.stderr, (text, out.output)
    assert run("weights", "check", DEMO_WEIGHTS).exit_code == 2  # nothing to check against
    missing = run("weights", "check", DEMO_WEIGHTS, "--bundle", tmp_path / "none")
    assert missing.exit_code == 2 and "no manifest" in missing.stderr


def test_weights_check_against_a_registrys_current(bundle_dir, tmp_path):
    reg = Registry(tmp_path / "registry", "demo")
    empty = run("weights", "check", DEMO_WEIGHTS, "--registry", tmp_path / "registry", "--model", "demo")
    assert empty.exit_code == 2 and "no CURRENT" in empty.stderr
    reg.publish(bundle_dir)
    out = run("weights", "check", DEMO_WEIGHTS, "--registry", tmp_path / "registry")
    assert out.exit_code == 0 and "fits demo v1" in out.stdout


def test_diff_of_a_file_against_itself_is_a_no_op(bundle_dir, tiny_dir):
    out = run("weights", "diff", DEMO_WEIGHTS, DEMO_WEIGHTS, "--bundle", bundle_dir, "--data", tiny_dir, "--all",
              "--json", "--resamples", "100")
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert len(result["profiles"]) == 5
    for d in result["profiles"]:
        assert d["kendall_tau"]["mean"] == 1.0 and d["overlap"]["mean"] == 1.0
        assert all(delta["mean"] == 0.0 and delta["lo"] == delta["hi"] == 0.0 for delta in d["deltas"].values())
        assert d["most_changed"] == []
    plain = run("weights", "diff", DEMO_WEIGHTS, DEMO_WEIGHTS, "--bundle", bundle_dir, "--data", tiny_dir)
    assert plain.exit_code == 0 and "No profile changed" in plain.stdout


def test_diff_reports_changed_and_new_profiles_with_the_requests_that_moved(bundle_dir, tiny_dir, tmp_path):
    new = tmp_path / "new.yaml"
    new.write_text(DEMO_WEIGHTS.read_text().replace("like: {weight: 1.0, transform: zscore}\n    rating: {weight: 0.5",
                                                    "like: {weight: 3.0, transform: zscore}\n    rating: {weight: 0.5")
                   + "  likes_only:\n    like: 1.0\n")
    out = run("weights", "diff", DEMO_WEIGHTS, new, "--bundle", bundle_dir, "--data", tiny_dir, "--json",
              "--resamples", "100", "--top", "3")
    assert out.exit_code == 0, out.output
    diffs = {d["profile"]: d for d in json.loads(out.stdout)["profiles"]}
    assert set(diffs) == {"balanced", "likes_only"}
    assert diffs["likes_only"]["old"] == "default" and "new profile" in diffs["likes_only"]["note"]
    d = diffs["balanced"]
    assert d["kendall_tau"]["mean"] < 1 and d["overlap"]["mean"] < 1
    assert d["deltas"]["ndcg@10:like"]["mean"] > 0  # more weight on like ranks likes higher
    moved = d["most_changed"]
    assert len(moved) == 3 and moved[0]["overlap"] <= moved[-1]["overlap"] and moved[0]["old_top"] != moved[0]["new_top"]


def test_tune_writes_a_file_that_passes_weights_check_and_a_png(bundle_dir, tiny_dir, tmp_path):
    out_file = tmp_path / "tuned" / "weights.yaml"
    out = run("tune", bundle_dir, "--data", tiny_dir, "--weights", DEMO_WEIGHTS, "--objective", "ndcg@10:click",
              "--objective", "ndcg@10:like", "--trials", "40", "--out", out_file, "--resamples", "100", "--json")
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["requests"]["search"] + result["requests"]["holdout"] == 500
    assert len(result["front"]) >= 1 and [p["name"] for p in result["current"]] == [
        "default", "balanced", "satisfaction_first", "engagement_first", "click_only"]
    for p in result["chosen"]:
        search = p["search"]
        base = next(c for c in result["current"] if c["name"] == p["based_on"])["search"]
        assert sum(search[o] >= base[o] for o in search) == len(search)  # no worse than its base on the search half
    check = run("weights", "check", out_file, "--bundle", bundle_dir)
    assert check.exit_code == 0, check.output
    assert (out_file.with_suffix(".png")).stat().st_size > 10_000
    assert "ranker tune" in out_file.read_text().splitlines()[0]


def test_tune_needs_two_objectives_and_known_metrics(bundle_dir, tiny_dir, tmp_path):
    one = run("tune", bundle_dir, "--data", tiny_dir, "--weights", DEMO_WEIGHTS, "--objective", "ndcg@10:click",
              "--out", tmp_path / "w.yaml")
    assert one.exit_code == 2 and "at least two --objective" in one.stderr
    bad = run("tune", bundle_dir, "--data", tiny_dir, "--weights", DEMO_WEIGHTS, "--objective", "auc:click",
              "--objective", "ndcg@10:like", "--out", tmp_path / "w.yaml")
    assert bad.exit_code == 2 and "'auc:click' is not a metric" in bad.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)
