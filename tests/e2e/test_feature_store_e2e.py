"""Id-only requests against a real server: snapshot swaps under load (embedded store), and a real
redis-server killed and restarted under load (fail-open: no 5xx; fail-closed: 503, never 500)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx
import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from redis_helpers import RedisServer
from server_helpers import wait_until

from service.examples import example_request, ids_only
from service.feature_store.redis_loader import load_into_redis
from service.feature_store.snapshots import model_kinds, publish_snapshot, snapshot_registry

CLIENTS = 3
MAX_SECONDS = 12.0  # every load loop is bounded in time and count


class Load:
    """CLIENTS threads posting id-only requests until stopped; counts statuses and lookup summaries."""

    def __init__(self, url: str, bodies: list[bytes]) -> None:
        self.statuses: Counter = Counter()
        self.store_errors = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + MAX_SECONDS
        self._threads = [threading.Thread(target=self._client, args=(url, b)) for b in bodies]

    def _client(self, url: str, body: bytes) -> None:
        with httpx.Client(base_url=url, timeout=10.0) as c:
            for _ in range(5000):
                if self._stop.is_set() or time.monotonic() > self._deadline:
                    return
                try:
                    r = c.post("/v1/rank", content=body)
                    status, out = r.status_code, r.json()
                except httpx.HTTPError as e:
                    status, out = type(e).__name__, {}
                with self._lock:
                    self.statuses[status] += 1
                    self.store_errors += bool(out.get("lookup", {}).get("item", {}).get("store_error"))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def count(self) -> int:
        with self._lock:
            return sum(self.statuses.values())


def bodies(manifest) -> list[bytes]:
    return [orjson.dumps(ids_only(example_request(manifest, 200, seed=s))) for s in range(CLIENTS)]


def rank(d, body: bytes) -> dict:
    r = d.client.post("/v1/rank", content=body)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    assert wait_until(condition, timeout, 0.05), what


@pytest.mark.slow
def test_snapshot_swaps_under_load_fail_no_request_and_a_bad_one_is_refused(deploy, manifest, feature_files, tmp_path):
    d = deploy(RANKER_FEATURE_POLL_INTERVAL="0.2")
    items = snapshot_registry(d.registry.root, manifest.model_name, "item")
    users = snapshot_registry(d.registry.root, manifest.model_name, "user")
    publish_snapshot(feature_files["user"], users, "user", manifest)
    publish_snapshot(feature_files["item"], items, "item", manifest)
    store = lambda: d.client.get("/v1/models").json()["feature_store"]  # noqa: E731
    wait_for(lambda: store()["item"]["version"] == 1 and store()["user"]["version"] == 1, "snapshots v1 loaded")
    probe = bodies(manifest)[0]
    first = rank(d, probe)
    assert first["lookup"]["user"] == {"not_found": 0} and first["lookup"]["item"]["not_found"] < 200

    t = pq.read_table(feature_files["item"])
    changed = t.set_column(t.column_names.index("item_popularity"), "item_popularity",
                           pc.multiply(t.column("item_popularity"), 50.0))
    pq.write_table(changed, tmp_path / "v2.parquet")
    pq.write_table(t.drop_columns(["item_category"]), tmp_path / "bad.parquet")
    with Load(d.server.url, bodies(manifest)) as load:
        wait_for(lambda: load.count() >= 30, "load started")
        publish_snapshot(tmp_path / "v2.parquet", items, "item", manifest)
        wait_for(lambda: store()["item"]["version"] == 2, "snapshot v2 swapped in")
        # v3 is validated at publish, then broken on disk (a wrong schema reaching the server).
        publish_snapshot(feature_files["item"], items, "item", manifest)
        broken = items.bundle_dir(3) / "snapshot.parquet"
        pq.write_table(pq.read_table(tmp_path / "bad.parquet"), broken)
        wait_for(lambda: "3" in store()["item"]["refused"], "snapshot v3 refused")
        before = load.count()
        wait_for(lambda: load.count() >= before + 30, "more load after the refusal")
    assert set(load.statuses) == {200}, load.statuses
    assert store()["item"]["version"] == 2
    assert rank(d, probe)["items"] != first["items"]  # v2's values are what is served now
    metrics = d.client.get("/metrics").text
    assert 'ranker_feature_snapshot_loads_total{entity="item",result="refused"} 1.0' in metrics
    assert 'ranker_feature_lookups_total{entity="item"}' in metrics


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


def load_redis(server: RedisServer, manifest, feature_files) -> None:
    for entity, path in feature_files.items():
        load_into_redis(path, server.client(), manifest.model_name, entity, model_kinds(manifest, entity))


@pytest.mark.slow
def test_redis_killed_and_restarted_under_load_gives_no_5xx_when_failing_open(
        deploy, manifest, feature_files, redis_server):
    load_redis(redis_server, manifest, feature_files)
    d = deploy(RANKER_FEATURE_STORE="redis", RANKER_REDIS_URL=redis_server.url, RANKER_REDIS_TIMEOUT="0.2",
               RANKER_REDIS_RETRY_INTERVAL="0.3")
    probe = bodies(manifest)[0]
    healthy = rank(d, probe)
    assert "store_error" not in healthy["lookup"]["item"]
    with Load(d.server.url, bodies(manifest)) as load:
        wait_for(lambda: load.count() >= 30, "load started")
        redis_server.kill()
        wait_for(lambda: load.store_errors >= 10, "requests answered with defaults during the outage")
        redis_server.start()
        load_redis(redis_server, manifest, feature_files)
        wait_for(lambda: "store_error" not in rank(d, probe)["lookup"]["item"], "reconnected by itself")
    assert not [s for s in load.statuses if not (isinstance(s, int) and s < 500)], load.statuses
    assert set(load.statuses) == {200}, load.statuses
    assert rank(d, probe)["items"] == healthy["items"]
    assert "ranker_feature_store_errors_total{entity=\"item\"}" in d.client.get("/metrics").text


@pytest.mark.slow
def test_fail_closed_answers_503_with_retry_after_during_an_outage(deploy, manifest, feature_files, redis_server):
    load_redis(redis_server, manifest, feature_files)
    d = deploy(RANKER_FEATURE_STORE="redis", RANKER_REDIS_URL=redis_server.url, RANKER_REDIS_TIMEOUT="0.2",
               RANKER_FEATURE_ON_ERROR="closed", RANKER_REDIS_RETRY_INTERVAL="0.3")
    probe = bodies(manifest)[0]
    rank(d, probe)
    redis_server.kill()
    t0 = time.perf_counter()
    r = d.client.post("/v1/rank", content=probe)
    assert time.perf_counter() - t0 < 1.0  # bounded by the timeout, never a hang
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "feature_store_unavailable"
    redis_server.start()
    load_redis(redis_server, manifest, feature_files)
    wait_for(lambda: d.client.post("/v1/rank", content=probe).status_code == 200, "reconnected by itself")
