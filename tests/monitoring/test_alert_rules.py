"""deploy/monitoring/: the committed files are the generator's output, the PrometheusRule carries the
same rules as the plain file, every runbook anchor exists, and `promtool test rules` runs one case
per alert where it fires and one where it stays quiet (synthetic series, promtool's own evaluator)."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_helpers import promtool
from server_helpers import REPO
from typer.main import get_command

from scripts.monitoring.__main__ import main, render
from scripts.monitoring.rules import ALERTS, MODEL_AGE_HOURS, github_anchor, rules_file
from training.cli import app

MONITORING = REPO / "deploy" / "monitoring"
JOB = {"job": "ranker", "instance": "a:8000"}


def series(name: str, values: str, **labels: str) -> dict:
    merged = {**JOB, **labels}
    return {"series": name + "{" + ",".join(f'{k}="{v}"' for k, v in merged.items()) + "}", "values": values}


def fired(severity: str, **labels: str) -> dict:
    return {"exp_labels": {**labels, "severity": severity}}


def case(alert: str, input_series: list[dict], checks: list[tuple[str, list[dict]]]) -> dict:
    """checks: (eval_time, the alerts expected firing then; [] = quiet)."""
    return {"interval": "1m", "input_series": input_series, "name": alert,
            "alert_rule_test": [{"eval_time": t, "alertname": alert, "exp_alerts": exp} for t, exp in checks]}


def requests(ok: str, failed: str) -> list[dict]:
    return [series("ranker_requests_total", ok, status="200"), series("ranker_requests_total", failed, status="500")]


def latency(below_10ms: str, below_50ms: str) -> list[dict]:
    return [series("ranker_request_duration_seconds_bucket", v, status="200", le=le)
            for le, v in (("0.01", below_10ms), ("0.05", below_50ms), ("0.1", "0+100x30"), ("+Inf", "0+100x30"))]


def feature_traffic() -> list[dict]:
    """10 requests of 200 candidates a minute; item_category an item feature, user_segment a user one."""
    return [series("ranker_feature_info", "1x40", feature="item_category", source="item"),
            series("ranker_feature_info", "1x40", feature="user_segment", source="user"),
            series("ranker_candidates_per_request_sum", "0+2000x40"),
            series("ranker_candidates_per_request_count", "0+10x40")]


def share_case(alert: str, counter: str) -> dict:
    # user_segment: 5 of 10 requests (50 %; 0.25 % of candidates); item_category: 50 of 2000 candidates (2.5 %;
    # 5 per request): only the right denominator per source fires on the one and not the other.
    return case(alert, [*feature_traffic(), series(counter, "0+5x40", feature="user_segment"),
                        series(counter, "0+50x40", feature="item_category")],
                [("10m", []), ("25m", [fired("ticket", job="ranker", feature="user_segment")])])


def item_share_case(alert: str, counter: str) -> dict:
    # item_category: 400 of 2000 candidates (20 %), an item feature's share is per candidate.
    return case(alert, [*feature_traffic(), series(counter, "0+400x40", feature="item_category"),
                        series(counter, "0+0x40", feature="user_segment")],
                [("25m", [fired("ticket", job="ranker", feature="item_category")])])


HOUR = 3600


def unit_tests() -> list[dict]:
    page, ticket = "page", "ticket"
    return [
        case("RankerHighErrorRatio", requests("0+100x20", "0+5x20"),  # 4.8 %
             [("3m", []), ("15m", [fired(page, job="ranker")])]),
        case("RankerHighErrorRatio", requests("0+100x20", "0+0.5x20"), [("15m", [])]),  # 0.5 %
        case("RankerLatencyP99AboveSLO", latency("0+90x30", "0+95x30"),  # p99 between 50 and 100 ms
             [("5m", []), ("20m", [fired(page, job="ranker")])]),
        case("RankerLatencyP99AboveSLO", latency("0+99.5x30", "0+100x30"), [("20m", [])]),  # p99 under 10 ms
        case("RankerNotReady", [series("ranker_ready", "0x10"), series("ranker_ready", "1x10", instance="b:8000")],
             [("3m", []), ("6m", [fired(page, **JOB)])]),
        case("RankerTargetDown", [series("up", "0x10"), series("up", "1x10", instance="b:8000")],
             [("1m", []), ("5m", [fired(page, **JOB)])]),
        case("RankerNonFiniteScore", [series("ranker_non_finite_scores_total", "0 0 0 1 1 1 1 1 1 1 1 1")],
             [("2m", []), ("4m", [fired(page, **JOB)]), ("10m", [])]),
        share_case("RankerFeatureDefaulted", "ranker_features_defaulted_total"),
        item_share_case("RankerFeatureDefaulted", "ranker_features_defaulted_total"),
        share_case("RankerFeatureClipped", "ranker_features_clipped_total"),
        item_share_case("RankerFeatureClipped", "ranker_features_clipped_total"),
        case("RankerUnknownRequestField",
             [series("ranker_candidates_per_request_count", "0+100x30"),
              series("ranker_request_unknown_fields_total", "0+5x30", field="user.agee"),  # 5 %
              series("ranker_request_unknown_fields_total", "0+0.5x30", field="candidates.x")],  # 0.5 %
             [("10m", []), ("25m", [fired(ticket, job="ranker", field="user.agee")])]),
        case("RankerFeatureStoreErrors",
             [series("ranker_feature_store_errors_total", "0x3 0+20x10", entity="item"),
              series("ranker_feature_lookup_duration_seconds_count", "0+100x14", entity="item", store="redis"),
              series("ranker_feature_store_errors_total", "0x14", entity="user"),
              series("ranker_feature_lookup_duration_seconds_count", "0+100x14", entity="user", store="redis")],
             [("3m", []), ("9m", [fired(page, job="ranker", entity="item")])]),
        case("RankerFeatureStoreMissRatio",
             [series("ranker_feature_lookups_total", "0+1000x30", entity="item"),
              series("ranker_feature_misses_total", "0+500x30", entity="item"),  # 50 %
              series("ranker_feature_lookups_total", "0+100x30", entity="user"),
              series("ranker_feature_misses_total", "0+1x30", entity="user")],  # 1 %
             [("10m", []), ("25m", [fired(ticket, job="ranker", entity="item")])]),
        case("RankerWeightsReloadRefused", [series("ranker_weights_refused", "0 0 1 1 1 1 1 0 0 0")],
             [("2m", []), ("4m", [fired(ticket, **JOB)]), ("8m", [])]),
        case("RankerModelRefused", [series("ranker_model_refused", "0 1 1 1 1 1 1 1 0 0"),
                                    series("ranker_model_refused", "0x10", instance="b:8000")],
             [("3m", []), ("7m", [fired(ticket, **JOB)]), ("9m", [])]),
        # promtool evaluates at Unix time 0 + eval_time: a model created at -37 h is 37 h old at t = 0.
        case("RankerModelTooOld",
             [series("ranker_model_created_timestamp_seconds", f"{-(MODEL_AGE_HOURS + 1) * HOUR}x30"),
              series("ranker_model_created_timestamp_seconds", f"{-(MODEL_AGE_HOURS - 3) * HOUR}x30",
                     instance="b:8000")],
             [("5m", []), ("20m", [fired(ticket, **JOB)])]),
        case("RankerImpressionLogDrops",
             [series("ranker_log_dropped_total", "0+3x20", reason="queue_full"),
              series("ranker_log_dropped_total", "0x20", reason="disk_full")],
             [("3m", []), ("15m", [fired(ticket, job="ranker", reason="queue_full")])]),
        case("RankerCanaryWorse",
             [series("ranker_canary_check_failing", "0x5 1x10", instance="a:8000"),
              series("ranker_canary_check_failing", "0x15", instance="b:8000")],
             [("4m", []), ("8m", [fired(page, job="ranker")])]),
    ]


def run_promtool_tests(tmp_path: Path, tests: list[dict]) -> subprocess.CompletedProcess:
    """The generated rules without annotations (promtool compares annotations verbatim; their templates
    are checked by `promtool check rules` on the committed file), and the tests, in tmp_path."""
    doc = rules_file()
    for r in doc["groups"][0]["rules"]:
        r.pop("annotations")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                                        "tests": tests}, sort_keys=False))
    return subprocess.run([promtool(), "test", "rules", str(tmp_path / "tests.yml")], capture_output=True,
                          text=True, timeout=60)


def test_committed_files_are_the_generator_output() -> None:
    assert main(["--check"]) == 0, "run: python -m scripts.monitoring"
    assert (MONITORING / "rules.yml").read_text() == render()["rules.yml"]


def test_the_check_notices_a_hand_edited_file(tmp_path: Path) -> None:
    main(["--out", str(tmp_path)])
    assert main(["--check", "--out", str(tmp_path)]) == 0
    rules = tmp_path / "rules.yml"
    rules.write_text(rules.read_text().replace("> 0.01", "> 0.5", 1))
    assert main(["--check", "--out", str(tmp_path)]) == 1


def test_prometheus_rule_holds_the_same_rules_as_the_rules_file() -> None:
    plain = yaml.safe_load((MONITORING / "rules.yml").read_text())
    operator = yaml.safe_load((MONITORING / "prometheus-rule.yaml").read_text())
    assert operator["apiVersion"] == "monitoring.coreos.com/v1" and operator["kind"] == "PrometheusRule"
    assert operator["spec"] == plain
    assert operator["metadata"]["labels"]["role"] == "alert-rules"  # kube-prometheus's default ruleSelector
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["prometheus-rule.yaml"]


def test_promtool_accepts_the_committed_rules() -> None:
    for name in ("rules.yml",):
        out = subprocess.run([promtool(), "check", "rules", str(MONITORING / name)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"SUCCESS: {len(ALERTS)} rules found" in out.stdout


def test_every_alert_has_annotations_and_a_runbook_section_that_exists() -> None:
    doc = (REPO / "docs" / "OPERATIONS.md").read_text()
    anchors = {github_anchor(line.lstrip("#")) for line in doc.splitlines() if line.startswith("#")}
    assert "when-an-alert-fires" in anchors
    for r in yaml.safe_load((MONITORING / "rules.yml").read_text())["groups"][0]["rules"]:
        notes = r["annotations"]
        assert notes["summary"] and notes["description"], r["alert"]
        path, anchor = notes["runbook_url"].split("#")
        assert path.endswith("docs/OPERATIONS.md") and anchor in anchors, (r["alert"], anchor)


def test_every_alert_has_a_runbook_entry_with_three_checks_and_a_fix() -> None:
    """Issue 26's "done when": per alert, what it means, the first three things to check, the fixing command."""
    doc = (REPO / "docs" / "OPERATIONS.md").read_text()
    section = doc.split("## When an alert fires", 1)[1].split("\n## ", 1)[0]
    entries = dict(re.findall(r"^### (\w+)\n(.*?)(?=^### |\Z)", section, re.M | re.S))
    for r in yaml.safe_load((MONITORING / "rules.yml").read_text())["groups"][0]["rules"]:
        entry = entries.get(r["alert"])
        assert entry is not None, r["alert"]
        meaning, _, rest = entry.strip().partition("\n\n1. ")
        assert meaning and all(f"\n{i}. " in f"\n1. {rest}" for i in (1, 2, 3)), r["alert"]
        assert re.search(r"^Fix: .*`[^`]+`", rest, re.M | re.S), r["alert"]


def test_every_alert_has_promtool_cases() -> None:
    tested = {t["name"] for t in unit_tests()}
    assert tested == {a.name for a in ALERTS}
    by_alert: dict[str, set[bool]] = {}  # each alert is seen firing somewhere and quiet somewhere
    for t in unit_tests():
        for check in t["alert_rule_test"]:
            by_alert.setdefault(t["name"], set()).add(bool(check["exp_alerts"]))
    assert all(seen == {True, False} for seen in by_alert.values()), by_alert


def test_promtool_unit_tests_pass(tmp_path: Path) -> None:
    out = run_promtool_tests(tmp_path, unit_tests())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize("alert", ["RankerFeatureDefaulted", "RankerModelTooOld", "RankerWeightsReloadRefused"])
def test_promtool_fails_a_case_that_expects_the_wrong_thing(tmp_path: Path, alert: str) -> None:
    """The harness can fail: a case expecting silence where the alert fires is reported."""
    wrong = [t for t in unit_tests() if t["name"] == alert][:1]
    for check in wrong[0]["alert_rule_test"]:
        check["exp_alerts"] = []
    out = run_promtool_tests(tmp_path, wrong)
    assert out.returncode != 0 and alert in out.stdout + out.stderr


def runbook_commands() -> list[list[str]]:
    """Every `ranker ...` command quoted in "When an alert fires", as words."""
    doc = (REPO / "docs" / "OPERATIONS.md").read_text()
    section = doc.split("## When an alert fires", 1)[1].split("\n## ", 1)[0]
    quoted = re.findall(r"`(ranker [^`]+)`", section.replace("\n", " "))
    return [shlex.split(c.replace("...", "")) for c in quoted]


def test_the_runbook_commands_exist_with_the_options_they_use() -> None:
    root = get_command(app)
    commands = runbook_commands()
    assert len(commands) >= 10
    for words in commands:
        cmd, rest = root, words[1:]
        while hasattr(cmd, "commands") and rest and not rest[0].startswith("-"):
            sub = cmd.commands.get(rest[0])
            if sub is None:
                break
            cmd, rest = sub, rest[1:]
        assert not hasattr(cmd, "commands"), words  # reached a command, not a group
        options = {o for p in cmd.params for o in getattr(p, "opts", [])}
        for word in rest:
            if word.startswith("--"):
                assert word.split("=")[0] in options, (words, word)
