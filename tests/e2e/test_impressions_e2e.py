"""The impression log of a real server (uvicorn subprocess, real files): what it writes matches what it
answered, sampling and RANKER_LOG_FEATURES bound it, and faults cost records, never requests."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import orjson
import pyarrow.parquet as pq
import pytest
from impressions_helpers import metric, parquet_files, read_log

from service.contract.features import category_key
from service.examples import example_request
from service.impressions.segments import read_segment

FAST = {"RANKER_LOG_FLUSH_SECONDS": "0.2"}


def rank(client: httpx.Client, body: dict) -> dict:
    r = client.post("/v1/rank", content=orjson.dumps(body))
    assert r.status_code == 200, r.text
    return r.json()


def rows_of(table, request_id: str) -> list[dict]:
    rows = [r for r in table.to_pylist() if r["request_id"] == request_id]
    return sorted(rows, key=lambda r: r["position"])


def test_rows_match_the_responses_and_the_features_the_model_saw(deploy, tmp_path: Path, manifest) -> None:
    logs = tmp_path / "logs"
    d = deploy(RANKER_LOG_DIR=str(logs), **FAST)
    bodies = [example_request(manifest, 30, seed=s, request_id=f"req-{s}", top_k=10 if s % 2 else None)
              for s in range(4)]
    # One candidate leaves a numeric feature out (defaulted) and sends one far outside the training range.
    numeric = next(f for f in manifest.features.numeric if f.source == "item" and f.clip_max is not None)
    bodies[0]["candidates"][0].pop(numeric.name)
    bodies[0]["candidates"][1][numeric.name] = numeric.clip_max * 1000 + 1
    answers = [rank(d.client, b) for b in bodies]
    d.stop()  # SIGTERM: the writer drains the queue, rolls and publishes before the process exits
    table = read_log(logs)
    assert table.num_rows == sum(len(a["items"]) for a in answers)
    tasks = [t.name for t in manifest.tasks]
    for body, answer in zip(bodies, answers, strict=True):
        rows = rows_of(table, answer["request_id"])
        assert [r["item_id"] for r in rows] == [str(i["item_id"]) for i in answer["items"]]
        assert [r["position"] for r in rows] == [i["rank"] for i in answer["items"]]
        assert [r["score"] for r in rows] == [i["score"] for i in answer["items"]]  # float64: exact
        for t in tasks:
            assert [r[f"head_{t}"] for r in rows] == [i["scores"][t] for i in answer["items"]]
        r0 = rows[0]
        assert (r0["model_name"], r0["model_version"], r0["profile"], r0["weights_generation"]) == (
            manifest.model_name, answer["model_version"], answer["profile"], answer["weights_generation"])
        assert r0["user_key"] == category_key(body["user"]["user_id"])
        by_id = {c["item_id"]: c for c in body["candidates"]}
        for r in rows:
            sent = by_id[r["item_id"]]
            for f in manifest.features.all():
                if f.name == "item_id":
                    continue
                raw = sent.get(f.name) if f.source == "item" else body[f.source].get(f.name)
                expected = category_key(raw) if f.name in {c.name for c in manifest.features.categorical} else raw
                assert r[f.name] == expected, f.name
    first = {r["item_id"]: r for r in rows_of(table, "req-0")}
    missing, outside = bodies[0]["candidates"][0]["item_id"], bodies[0]["candidates"][1]["item_id"]
    assert numeric.name in first[missing]["defaulted"] and first[missing][numeric.name] is None
    assert numeric.name in first[outside]["clipped"] and first[outside][numeric.name] > numeric.clip_max
    assert all(numeric.name not in r["clipped"] for k, r in first.items() if k != outside)


def test_sampling_is_stable_per_request_id_and_features_are_bounded(deploy, tmp_path: Path, manifest) -> None:
    kept = [f.name for f in manifest.features.numeric][:1]
    logs = [tmp_path / "a", tmp_path / "b"]
    servers = [deploy(RANKER_LOG_DIR=str(p), RANKER_LOG_SAMPLE="0.5", RANKER_LOG_FEATURES=f, **FAST)
               for p, f in zip(logs, (",".join(kept), "none"), strict=True)]
    ids = [f"user-request-{i}" for i in range(40)]
    for s in servers:
        for i in ids:
            rank(s.client, example_request(manifest, 5, seed=1, request_id=i))
        s.stop()
    a, b = read_log(logs[0]), read_log(logs[1])
    logged_a, logged_b = set(a.column("request_id").to_pylist()), set(b.column("request_id").to_pylist())
    assert logged_a == logged_b  # the same ids on both servers: a hash of the id, not a draw
    assert 8 <= len(logged_a) <= 32
    features = {f.name for f in manifest.features.all()} - {"item_id"}
    assert set(a.column_names) & features == set(kept)
    assert set(b.column_names) & features == set() and "defaulted" not in b.column_names


def test_an_unwritable_directory_costs_records_not_requests(deploy, tmp_path: Path, manifest) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    d = deploy(RANKER_LOG_DIR=str(tmp_path / "a-file" / "logs"), **FAST)
    for s in range(20):
        rank(d.client, example_request(manifest, 5, seed=s))
        time.sleep(0.02)
    time.sleep(0.5)  # the writer's next flush
    page = d.client.get("/metrics").text
    assert metric(page, "ranker_log_dropped_total", reason="unwritable") == 20
    assert metric(page, "ranker_requests_total", status="200") == 20
    d.stop()
    warnings = [line for line in d.server.logs().splitlines() if '"reason": "unwritable"' in line
                or '"reason":"unwritable"' in line]
    assert len(warnings) == 1, warnings  # one line per reason per minute, however many flushes failed


def test_a_full_queue_sheds_records_not_requests(deploy, tmp_path: Path, manifest) -> None:
    # The writer stalls 2 s before each write (a slow disk): once it is stalled, a queue of 4 fills at once.
    d = deploy(RANKER_LOG_DIR=str(tmp_path / "logs"), RANKER_LOG_QUEUE_SIZE="4", RANKER_LOG_PAUSE_AT="write",
               RANKER_LOG_PAUSE_SECONDS="2", **FAST)
    rank(d.client, example_request(manifest, 5, seed=0))
    time.sleep(0.5)  # the first flush: the writer is now stalled in it
    for s in range(30):
        rank(d.client, example_request(manifest, 5, seed=s))
    page = d.client.get("/metrics").text
    assert metric(page, "ranker_log_dropped_total", reason="queue_full") == 30 - 4
    assert metric(page, "ranker_requests_total", status="200") == 31
    d.stop()
    assert d.server.logs().count('"queue_full"') == 1  # the warning line, once
    assert read_log(tmp_path / "logs").num_rows == (1 + 4) * 5  # what was queued was written


@pytest.mark.slow
def test_kill_9_under_load_loses_at_most_one_flush_interval(deploy, tmp_path: Path, manifest) -> None:
    """Bounded load (4 s at ~100 req/s), SIGKILL: every Parquet file reads, the segments read up to a
    torn last batch, and after a restart (whose recovery compacts them) the rows on disk cover every
    response but at most one flush interval's."""
    logs = tmp_path / "logs"
    env = {"RANKER_LOG_DIR": str(logs), "RANKER_LOG_FLUSH_SECONDS": "0.5", "RANKER_LOG_ROLL_SECONDS": "1",
           "RANKER_REPLICA": "kill-test"}
    d = deploy(**env)
    bodies = [orjson.dumps(example_request(manifest, 20, seed=s)) for s in range(8)]
    answered: list[float] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=d.server.url, timeout=5) as c:
            for i in range(1000):
                if stop.is_set():
                    return
                try:
                    if c.post("/v1/rank", content=bodies[i % len(bodies)]).status_code == 200:
                        answered.append(time.monotonic())
                except httpx.TransportError:
                    return
                time.sleep(0.01)

    worker = threading.Thread(target=load)
    worker.start()
    time.sleep(4.0)
    d.server.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    stop.set()
    worker.join(10)
    d.server.proc.wait(5)
    for path in parquet_files(logs):
        pq.read_table(path)  # published files are whole
    leftovers = sorted(logs.rglob(".part-*.arrows"))
    assert leftovers  # the open segment survived the kill
    for path in leftovers:
        assert read_segment(path) is not None
    rate = len(answered) / (answered[-1] - answered[0])
    # A restart under the same replica name (a restarted pod) recovers the segments at startup.
    again = deploy(**{**env})  # a new deployment dir, the same log dir
    again.stop()
    assert not list(logs.rglob(".part-*"))
    rows = read_log(logs).num_rows
    lost_requests = len([t for t in answered if t <= killed]) - rows / 20
    print(f"kill -9: {len(answered)} answered at {rate:.0f}/s, {lost_requests:.0f} not on disk")
    assert lost_requests >= 0
    assert lost_requests <= math.ceil(rate * 0.5) + 5, (lost_requests, rate)


def test_the_log_is_off_by_default(deploy, tmp_path: Path, manifest) -> None:
    d = deploy()
    rank(d.client, example_request(manifest, 3))
    assert "ranker_log_dropped_total" not in d.client.get("/metrics").text
    assert not list(Path(os.getcwd()).glob("impressions"))


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 256 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    import subprocess

    path = tmp_path / "tiny-disk"
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_costs_records_not_requests(deploy, tiny_disk: Path, manifest) -> None:
    d = deploy(RANKER_LOG_DIR=str(tiny_disk), **FAST)
    body = orjson.dumps(example_request(manifest, 500, seed=0))
    for _ in range(60):  # ~15 KiB of Arrow per request: the disk fills within the first flushes
        assert d.client.post("/v1/rank", content=body).status_code == 200
        time.sleep(0.01)
    time.sleep(0.5)
    page = d.client.get("/metrics").text
    assert metric(page, "ranker_log_dropped_total", reason="disk_full") > 0
    assert metric(page, "ranker_requests_total", status="200") == 60
    d.stop()
    assert sum('"disk_full"' in line for line in d.server.logs().splitlines()) == 1  # one line a minute
