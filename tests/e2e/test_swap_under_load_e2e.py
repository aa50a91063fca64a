"""Model swaps and weights edits while 8 clients keep sending requests: zero failed requests."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections import Counter

import httpx
import orjson
import pytest

from service.examples import example_request

CLIENTS = 8
DURATION = 8.0  # seconds of load (bounded); the test stays well under 20 s
SWAPS = 4


@pytest.mark.slow
def test_swaps_under_concurrent_load_fail_no_request(deploy, manifest):
    d = deploy()
    bodies = [orjson.dumps(example_request(manifest, 200, seed=s)) for s in range(CLIENTS)]
    statuses: Counter = Counter()
    versions: Counter = Counter()
    not_ready = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(body: bytes) -> None:
        with httpx.Client(base_url=d.server.url, timeout=10.0) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/rank", content=body)
                    status, version = r.status_code, r.json().get("model_version")
                except httpx.HTTPError as e:
                    status, version = type(e).__name__, None
                with lock:
                    statuses[status] += 1
                    versions[version] += 1

    def probe() -> None:
        with httpx.Client(base_url=d.server.url, timeout=5.0) as c:
            while not stop.is_set():
                if c.get("/v2/health/ready").status_code != 200:
                    not_ready.append(time.monotonic())
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(b,)) for b in bodies] + [threading.Thread(target=probe)]
    for t in threads:
        t.start()
    start = time.monotonic()
    try:
        for k in range(SWAPS):
            time.sleep(DURATION / (SWAPS + 1))
            copy = d.root / f"copy-{k}"
            shutil.copytree(d.bundle_dir, copy)
            d.registry.publish(copy)
            if k == 1:  # a weights edit in the middle of it too
                tmp = d.weights_path.with_suffix(".tmp")
                tmp.write_text(d.weights_path.read_text().replace("click: 1.0", "click: 2.0"))
                os.replace(tmp, d.weights_path)
        time.sleep(max(0.0, DURATION - (time.monotonic() - start)))
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    total = sum(statuses.values())
    print(f"{total} requests in {time.monotonic() - start:.1f}s; statuses {dict(statuses)}; versions {dict(versions)}")
    assert set(statuses) == {200}, statuses
    assert total >= 50
    assert len([v for v in versions if v is not None]) >= 3  # requests were served by several versions
    assert max(versions) == SWAPS + 1
    assert not not_ready
