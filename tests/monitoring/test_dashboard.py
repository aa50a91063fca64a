"""deploy/monitoring/dashboard.json: the generator's output, with the panels an operator needs, laid out
without overlaps; and compose.yaml's Prometheus and Grafana wired to the committed files (the images
cannot run here: the config is checked with promtool and the mounts against the tree)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from prometheus_helpers import promtool
from server_helpers import REPO

from scripts.monitoring.__main__ import render
from scripts.monitoring.rules import JOB

DEPLOY = REPO / "deploy"
MONITORING = DEPLOY / "monitoring"


def dashboard() -> dict:
    return json.loads((MONITORING / "dashboard.json").read_text())


def exprs_of(title_part: str) -> str:
    panels = [p for p in dashboard()["panels"] if title_part.lower() in p["title"].lower()]
    assert panels, title_part
    return " ".join(t["expr"] for p in panels for t in p["targets"])


def test_the_committed_dashboard_is_the_generator_output() -> None:
    assert (MONITORING / "dashboard.json").read_text() == render()["dashboard.json"]


def test_the_dashboard_has_the_panels_operators_need() -> None:
    wanted = {  # title fragment -> a metric its queries must read
        "traffic by profile and arm": "ranker_profile_requests_total",
        "latency": "ranker_request_duration_seconds_bucket",
        "error ratio by status": "ranker_requests_total",
        "head score distribution": "ranker_head_score_bucket",
        "head score p05": "ranker_head_score_bucket",
        "served and training": "ranker_head_score_training",
        "defaulted share": "ranker_features_defaulted_total",
        "clipped share": "ranker_features_clipped_total",
        "feature-store lookups": "ranker_feature_misses_total",
        "model version": "ranker_model_info",
        "model age": "ranker_model_created_timestamp_seconds",
        "weights generation": "ranker_weights_generation",
        "impression log": "ranker_log_dropped_total",
    }
    for title, metric in wanted.items():
        assert metric in exprs_of(title), title
    assert "arm" in exprs_of("traffic") and "profile" in exprs_of("traffic")
    assert all(f"histogram_quantile({q}" in exprs_of("request latency") for q in (0.5, 0.9, 0.99))


def test_panels_are_well_formed_and_do_not_overlap() -> None:
    d = dashboard()
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
        area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & area, p["title"]
        cells |= area
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(t["datasource"]["uid"] == "${datasource}"
                                                            for t in p["targets"])
    names = {v["name"] for v in d["templating"]["list"]}
    assert names == {"datasource", "task"}  # every $variable a query uses is defined
    used = {w for p in d["panels"] for t in p["targets"] for w in ("$task",) if w in t["expr"]}
    assert used == {"$task"}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def mounts(service: dict) -> dict[str, Path]:
    """container path -> host path (relative to deploy/) of a service's bind mounts."""
    out = {}
    for v in service["volumes"]:
        host, container = v.split(":")[:2]
        if host.startswith("."):
            out[container] = (DEPLOY / host).resolve()
    return out


def test_compose_prometheus_loads_the_rules_and_scrapes_the_server(tmp_path: Path) -> None:
    services = compose()["services"]
    prom = services["prometheus"]
    assert prom["image"].startswith("prom/prometheus:v") and ":latest" not in prom["image"]
    m = mounts(prom)
    assert m["/etc/prometheus/prometheus.yml"] == MONITORING / "prometheus.yml"
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    assert [m[r] for r in config["rule_files"]] == [MONITORING / "rules.yml"]  # the generated rules
    job = config["scrape_configs"][0]
    assert job["job_name"] == JOB  # the rules select up{job="ranker"}
    port = services["server"]["environment"]["RANKER_PORT"]
    assert job["static_configs"][0]["targets"] == [f"server:{port}"]
    # promtool checks the config and the rules it loads (the rule path pointed at the committed file)
    config["rule_files"] = [str(MONITORING / "rules.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    out = subprocess.run([promtool(), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                         text=True)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_compose_grafana_provisions_the_prometheus_datasource_and_the_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    assert grafana["image"].startswith("grafana/grafana:") and ":latest" not in grafana["image"]
    m = mounts(grafana)
    datasources = yaml.safe_load(m["/etc/grafana/provisioning/datasources/ranker.yaml"].read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(m["/etc/grafana/provisioning/dashboards/ranker.yaml"].read_text())
    folder = providers["providers"][0]["options"]["path"]
    dashboards = [c for c in m if c.startswith(folder + "/")]
    assert [m[c] for c in dashboards] == [MONITORING / "dashboard.json"]
    assert "prometheus" in grafana["depends_on"]
