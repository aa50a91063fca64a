"""The alert rules against a real Prometheus scraping a real server: each fault is made for real (Redis
killed under load, a bad weights file written, a corrupt model made CURRENT, requests leaving a feature
out), the matching alert is read back from Prometheus's HTTP API while pending or firing, and it clears
after the fix (Redis back, the file restored, `rollback`, the feature sent again). The rules are the generator's, rendered with a 5 s rate window and a 1 s `for:` (scripts/monitoring/rules.py Timing).
And every metric name the rules and the dashboard use is one a real server exports."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_helpers import PrometheusServer
from redis_helpers import RedisServer
from server_helpers import wait_until

from scripts.monitoring.__main__ import render
from scripts.monitoring.rules import Timing, rules_file
from service.examples import example_request, ids_only
from service.feature_store.redis_loader import load_into_redis
from service.feature_store.snapshots import model_kinds

TIMING = Timing(window="5s", for_="1s")
MAX_SECONDS = 60.0  # the traffic loop stops by itself after this long (or MAX_REQUESTS)
MAX_REQUESTS = 20_000
ALERT_TIMEOUT = 20.0
TIMING_SETTLE = 6.0  # seconds of healthy traffic before the first check: the 5 s windows filled


class Traffic:
    """One client posting `body` (which the test may swap) about 50 times a second until stopped."""

    def __init__(self, url: str, body: bytes) -> None:
        self.body = body
        self.statuses: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url,))

    def _run(self, url: str) -> None:
        deadline = time.monotonic() + MAX_SECONDS
        with httpx.Client(base_url=url, timeout=10.0) as c:
            for _ in range(MAX_REQUESTS):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    self.statuses[c.post("/v1/rank", content=self.body).status_code] += 1
                except httpx.HTTPError as e:
                    self.statuses[type(e).__name__] += 1
                time.sleep(0.02)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


def active(prom: PrometheusServer) -> dict[tuple[str, str], str]:
    """(alertname, the label that tells them apart) -> pending | firing."""
    out = {}
    for a in prom.alerts():
        labels = a["labels"]
        detail = labels.get("feature") or labels.get("entity") or labels.get("instance", "")
        out[(labels["alertname"], detail)] = a["state"]
    return out


def wait_alert(prom: PrometheusServer, name: str, detail: str | None = None, present: bool = True) -> float:
    """Seconds until the alert (any detail, or this one) is pending or firing (present) / gone (not present)."""
    t0 = time.monotonic()

    def seen() -> bool:
        keys = active(prom)
        hit = any(n == name and (detail is None or d == detail) for n, d in keys)
        return hit == present

    assert wait_until(seen, ALERT_TIMEOUT, 0.25), (name, detail, present, active(prom))
    return time.monotonic() - t0


@pytest.fixture
def redis_server(tmp_path: Path):
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def prometheus(tmp_path: Path):
    started: list[PrometheusServer] = []

    def start(target: str) -> PrometheusServer:
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        started.append(PrometheusServer(workdir, [target], rules_file(TIMING)))
        return started[-1].start()

    yield start
    for p in started:
        p.stop()


def corrupt_copy(bundle_dir: Path, to: Path) -> Path:
    shutil.copytree(bundle_dir, to)
    with open(to / "model.onnx", "ab") as f:
        f.write(b"\0")  # breaks the sha256 the manifest records
    return to


def load_redis(server: RedisServer, manifest, feature_files) -> None:
    for entity, path in feature_files.items():
        load_into_redis(path, server.client(), manifest.model_name, entity, model_kinds(manifest, entity))


@pytest.mark.slow
def test_real_faults_fire_their_alerts_and_the_fix_clears_them(deploy, manifest, feature_files, redis_server,
                                                                prometheus):
    t_start = time.monotonic()
    load_redis(redis_server, manifest, feature_files)
    d = deploy(RANKER_FEATURE_STORE="redis", RANKER_REDIS_URL=redis_server.url, RANKER_REDIS_TIMEOUT="0.2",
               RANKER_REDIS_RETRY_INTERVAL="0.3")
    prom = prometheus(d.server.url.removeprefix("http://"))
    healthy = ids_only(example_request(manifest, 20, seed=1))
    without_device = {**healthy, "context": {k: v for k, v in healthy["context"].items() if k != "device"}}
    good_weights = d.weights_path.read_bytes()
    timings: dict[str, float] = {}
    with Traffic(d.server.url, orjson.dumps(healthy)) as traffic:
        assert wait_until(lambda: prom.query("ranker_ready == 1") != [], 15, 0.2), "first scrape"
        time.sleep(TIMING_SETTLE)
        assert active(prom) == {}, "quiet while healthy"

        redis_server.kill()  # under load; the server fails open
        timings["store errors fire"] = wait_alert(prom, "RankerFeatureStoreErrors", "item")
        redis_server.start()
        load_redis(redis_server, manifest, feature_files)
        timings["store errors clear"] = wait_alert(prom, "RankerFeatureStoreErrors", present=False)
        wait_alert(prom, "RankerFeatureDefaulted", present=False)  # the outage defaulted the item features

        d.weights_path.write_text("profiles:\n  default:\n    not_a_task: 1.0\n")
        timings["weights refused fire"] = wait_alert(prom, "RankerWeightsReloadRefused")
        d.weights_path.write_bytes(good_weights)
        timings["weights refused clear"] = wait_alert(prom, "RankerWeightsReloadRefused", present=False)

        broken = d.registry.publish(corrupt_copy(d.bundle_dir, d.root / "broken"))  # CURRENT -> a bad sha256
        timings["model refused fires"] = wait_alert(prom, "RankerModelRefused")
        assert d.registry.rollback() == 1 and broken == 2  # the runbook's fix: ranker registry rollback
        timings["model refused clears"] = wait_alert(prom, "RankerModelRefused", present=False)

        traffic.body = orjson.dumps(without_device)
        timings["defaulted fires"] = wait_alert(prom, "RankerFeatureDefaulted", "device")
        assert not any(n == "RankerFeatureDefaulted" and f != "device" for n, f in active(prom)), active(prom)
        traffic.body = orjson.dumps(healthy)
        timings["defaulted clears"] = wait_alert(prom, "RankerFeatureDefaulted", present=False)
        assert active(prom) == {}, "quiet after the fixes"
    assert set(traffic.statuses) == {200}, traffic.statuses  # fail-open: the outage cost no request
    check_dashboard_queries(prom)
    print(json.dumps({**{k: round(v, 1) for k, v in timings.items()}, "total": round(time.monotonic() - t_start, 1)}))



def check_dashboard_queries(prom: PrometheusServer) -> None:
    """Every panel's query is valid PromQL to a real Prometheus, and the main panels show data."""
    empty = []
    for p in json.loads(render()["dashboard.json"])["panels"]:
        for t in p["targets"]:
            expr = t["expr"].replace("$__rate_interval", "15s").replace("$task", ".*")
            r = httpx.get(f"{prom.url}/api/v1/query", params={"query": expr}, timeout=5.0).json()
            assert r["status"] == "success", (p["title"], expr, r)
            if not r["data"]["result"]:
                empty.append(p["title"])
    for title in ("Traffic by profile and arm", "Request latency (answered)",
                  "Head score p05 / p50 / p95 by task: served and training", "Head score mean by task: served and training",
                  "Model version served", "Model age", "Weights generation and refusals"):
        assert title not in empty, (title, empty)


def used_metric_names() -> set[str]:
    """Every ranker_* name in a rule expression or a dashboard query, as committed."""
    files = render()
    rules = [r["expr"] for r in rules_file()["groups"][0]["rules"]]
    queries = [t["expr"] for p in json.loads(files["dashboard.json"])["panels"] for t in p["targets"]]
    return {n for e in rules + queries for n in re.findall(r"\branker_[a-z0-9_]+", e)}


def exported(metrics_text: str) -> tuple[set[str], dict[str, set[str]]]:
    """Sample names a scrape shows (families with no sample yet by their type's names) and label names seen."""
    names: set[str] = set()
    labels: dict[str, set[str]] = {}
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    for family in text_string_to_metric_families(metrics_text):
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
        for sample in family.samples:
            names.add(sample.name)
            labels.setdefault(sample.name, set()).update(sample.labels)
    return names, labels


def test_every_metric_the_rules_and_dashboard_use_is_exported_by_a_real_server(deploy, manifest, tmp_path):
    d = deploy(RANKER_LOG_DIR=str(tmp_path / "log"))  # the impression log's metrics too
    body = example_request(manifest, 5, seed=0)
    body["user"]["user_agee"] = 3  # an unknown field; and one feature left out, one out of range
    body["context"].pop("device")
    body["candidates"][0]["item_popularity"] = 1e12
    assert d.client.post("/v1/rank", json=body).status_code == 200
    names, labels = exported(d.client.get("/metrics").text)
    used = used_metric_names()
    assert len(used) >= 25, used
    assert used - names == set(), f"rules or dashboard use names the server does not export: {used - names}"
    checked = 0  # label matchers and `by (...)` labels name real labels (where the scrape has samples)
    for query in [r["expr"] for r in rules_file()["groups"][0]["rules"]]:
        uses = [(name, re.findall(r"(\w+)\s*[=!~]+", matchers))
                for name, matchers in re.findall(r"\b(ranker_[a-z0-9_]+)\{([^}]*)\}", query)]
        uses += [(name, [x.strip() for x in by.split(",")]) for by, name in
                 re.findall(r"by \(([^)]*)\) \((?:rate|increase)\((ranker_[a-z0-9_]+)", query)]
        for name, used_labels in uses:
            for label in set(used_labels) - {"job", "instance", "le"}:
                if name in labels:
                    assert label in labels[name], (name, label, labels[name])
                    checked += 1
    assert checked >= 8, checked
    text = d.client.get("/metrics").text
    assert "ranker_ready 1.0" in text and "ranker_weights_generation 1.0" in text and "ranker_weights_refused 0.0" in text
    assert 'ranker_feature_info{feature="device",source="context"} 1.0' in text
    assert 'ranker_feature_info{feature="item_popularity",source="item"} 1.0' in text
    assert 'ranker_features_defaulted_total{feature="device"} 1.0' in text
    click = next(t for t in manifest.tasks if t.name == "click").score_stats
    assert f'ranker_head_score_training{{stat="p50",task="click"}} {click.quantiles["p50"]!r}' in text
    created = float(re.search(r"^ranker_model_created_timestamp_seconds (\S+)$", text, re.M).group(1))
    assert created == manifest.created_at.timestamp()
