"""`ranker-serve --workers 2`: two processes on one port, and /metrics adds up both."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.mmap_dict import MmapedDict

from service.examples import example_request

REQUESTS = 60
CANDIDATES = 20


def requests_per_process(metrics_dir: Path) -> dict[str, float]:
    """pid -> answered /v1/rank requests (status 200), read from each process's own counter file."""
    out = {}
    for path in metrics_dir.glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))
        out[path.stem.split("_")[-1]] = sum(
            v for key, v, *_ in values if '"ranker_requests_total"' in key and '"200"' in key)
    return out


def wait_until_every_process_is_ready(url: str, in_a_row: int = 12, timeout: float = 60.0) -> None:
    """Readiness over new connections until `in_a_row` answers in a row say ready: the server's own start-up
    wait sees one process, and the kernel spreads new connections over both (a process that is still
    loading its model answers /v1/rank with 503)."""
    deadline, streak = time.monotonic() + timeout, 0
    while streak < in_a_row:
        assert time.monotonic() < deadline, f"the processes were not all ready within {timeout} s"
        with httpx.Client(base_url=url, timeout=5.0) as c:
            ready = c.get("/v2/health/ready").status_code == 200
        streak = streak + 1 if ready else 0
        if not ready:
            time.sleep(0.1)


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


@pytest.mark.slow
def test_two_processes_share_the_port_and_metrics_add_up(deploy, manifest, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    d = deploy(RANKER_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    body = orjson.dumps(example_request(manifest, CANDIDATES, seed=1))
    wait_until_every_process_is_ready(d.server.url)

    def post(_: int) -> int:  # a new connection each time, so either process may accept it
        with httpx.Client(base_url=d.server.url, timeout=10.0) as c:
            return c.post("/v1/rank", content=body, headers={"content-type": "application/json"}).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(post, range(REQUESTS)))
    ok = statuses.count(200)
    assert ok >= REQUESTS - 5, statuses  # both ready: a 503 now is load shed
    per_process = requests_per_process(metrics_dir)
    assert sum(per_process.values()) == ok
    assert sum(1 for n in per_process.values() if n) == 2, per_process  # both processes answered
    for _ in range(6):  # whichever process answers /metrics reports both processes' requests
        with httpx.Client(base_url=d.server.url, timeout=10.0) as c:
            text = c.get("/metrics").text
        assert metric(text, 'ranker_requests_total{status="200"}') == ok
        assert metric(text, 'ranker_head_score_count{task="click"}') == ok * CANDIDATES
        assert metric(text, 'ranker_candidates_per_request_sum') == ok * CANDIDATES
        assert metric(text, 'ranker_model_info{version="1"}') == 1
        # the alert rules' gauges, merged over the live processes (livemin / livemax)
        assert metric(text, "ranker_ready") == 1 and metric(text, "ranker_weights_refused") == 0
        assert metric(text, "ranker_model_created_timestamp_seconds") == manifest.created_at.timestamp()
        assert metric(text, 'ranker_feature_info{feature="device",source="context"}') == 1
