"""POST /v1/feedback on a real server (uvicorn subprocess, real files, real fsync): a 200 batch is in
the log as FEEDBACK_SCHEMA rows exactly as sent, every bad batch is a 4xx naming the field with nothing
written, a retry is not written twice, the token is enforced, a disk fault is a 503 (never a 200),
and ranking keeps answering 200 while feedback is posted."""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from feedback_helpers import feedback_files, read_feedback
from impressions_helpers import metric, read_log

from service.examples import example_request
from service.impressions.segments import read_segment

FAST = {"RANKER_LOG_FLUSH_SECONDS": "0.2"}
TOKEN = "feedback-token-0123456789"


def rank(client: httpx.Client, body: dict) -> dict:
    r = client.post("/v1/rank", content=orjson.dumps(body))
    assert r.status_code == 200, r.text
    return r.json()


def post(client: httpx.Client, events: list[dict], **kwargs) -> httpx.Response:
    return client.post("/v1/feedback", content=orjson.dumps({"events": events}), **kwargs)


def test_a_batch_is_in_the_log_as_sent_and_joins_the_impressions(deploy, tmp_path: Path, manifest) -> None:
    logs = tmp_path / "logs"
    d = deploy(RANKER_LOG_DIR=str(logs), **FAST)
    answer = rank(d.client, example_request(manifest, 10, seed=1, request_id="req-1", top_k=3))
    rid, items = answer["request_id"], [i["item_id"] for i in answer["items"]]
    events = [
        {"request_id": rid, "item_id": items[0], "event": "click", "ts": "2026-12-07T12:00:03.250Z", "event_id": "e1"},
        {"request_id": rid, "item_id": items[0], "event": "watch_seconds", "value": 312.5,
         "ts": "2026-12-07T13:00:04+01:00", "event_id": "e2"},
        {"request_id": rid, "item_id": items[1], "event": "like", "value": 1},
        {"request_id": rid, "item_id": items[2], "event": "rating", "value": 4.5, "event_id": "e4"},
    ]
    before = datetime.now(UTC)
    r = post(d.client, events)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 4, "duplicates": 0}
    page = d.client.get("/metrics").text
    assert metric(page, "ranker_feedback_events_total", event="click") == 1
    assert metric(page, "ranker_feedback_events_total", event="rating") == 1
    d.stop()  # SIGTERM: the open segment is rolled to Parquet and published
    rows = read_feedback(logs).to_pylist()
    assert [(r["request_id"], r["item_id"], r["event"], r["value"], r["event_id"]) for r in rows] == [
        (rid, items[0], "click", None, "e1"), (rid, items[0], "watch_seconds", 312.5, "e2"),
        (rid, items[1], "like", 1.0, None), (rid, items[2], "rating", 4.5, "e4")]
    assert rows[0]["ts"] == datetime(2026, 12, 7, 12, 0, 3, 250000, tzinfo=UTC)
    assert rows[1]["ts"] == datetime(2026, 12, 7, 12, 0, 4, tzinfo=UTC)
    assert before.replace(microsecond=0) <= rows[2]["ts"] <= datetime.now(UTC)  # no ts: the receive time
    # The join's keys: the same (request_id, item_id) strings as the impression log's rows.
    shown = {(r["request_id"], r["item_id"]) for r in read_log(logs).to_pylist()}
    assert {(r["request_id"], r["item_id"]) for r in rows} <= shown
    assert [p.parent.parent.name.startswith("date=") for p in feedback_files(logs)] == [True]


BAD = [
    ([{"request_id": "r", "item_id": "i", "event": "clack"}], 422, "events[0].event", "unknown event 'clack'"),
    ([{"request_id": "r", "item_id": "i", "event": "click", "value": 1}], 422, "events[0].value", "flag event"),
    ([{"request_id": "r", "item_id": "i", "event": "rating"}], 422, "events[0].value", "needs a value"),
    ([{"request_id": "r", "item_id": "i", "event": "click"}, {"item_id": "i", "event": "click"}], 422,
     "events[1].request_id", "missing"),
    ([{"request_id": "r", "item_id": "i", "event": "click", "ts": "2026-12-07 12:00"}], 422, "events[0].ts", ""),
    ([{"request_id": "r", "item_id": "i", "event": "click"}] * 6, 413, "events", "limit of 5"),
]


def test_bad_batches_are_4xx_naming_the_field_and_nothing_is_written(deploy, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    d = deploy(RANKER_LOG_DIR=str(logs), RANKER_FEEDBACK_MAX_EVENTS="5", RANKER_FEEDBACK_MAX_BODY_BYTES="1024", **FAST)
    for events, status, field, words in BAD:
        r = post(d.client, events)
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["fields"][0]["field"] == field and words in error["message"], error
    # Non-finite: JSON cannot say NaN, and a number beyond float64 is refused by name.
    r = d.client.post("/v1/feedback", content=b'{"events": [{"request_id": "r", "item_id": "i", '
                      b'"event": "rating", "value": 1e999}]}')
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "events[0].value"
    big = [{"request_id": "r" * 128, "item_id": "i" * 128, "event": "click", "event_id": "e" * 128}] * 5
    r = post(d.client, big)  # 5 valid events in ~2 KB
    assert r.status_code == 413 and "1024" in r.json()["error"]["message"], r.text
    page = d.client.get("/metrics").text
    assert metric(page, "ranker_feedback_rejected_total", reason="invalid") == len(BAD)
    assert metric(page, "ranker_feedback_rejected_total", reason="too_large") == 2
    d.stop()
    assert not feedback_files(logs) and not list((logs / "feedback").rglob(".part-*"))


def test_a_retried_batch_is_written_once(deploy, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    d = deploy(RANKER_LOG_DIR=str(logs), **FAST)
    events = [{"request_id": "r1", "item_id": f"i{n}", "event": "click", "event_id": f"e{n}"} for n in range(5)]
    assert post(d.client, events).json() == {"accepted": 5, "duplicates": 0}
    assert post(d.client, events).json() == {"accepted": 0, "duplicates": 5}  # the client's retry
    more = events + [{"request_id": "r1", "item_id": "i9", "event": "click", "event_id": "e9"}]
    assert post(d.client, more).json() == {"accepted": 1, "duplicates": 5}
    assert metric(d.client.get("/metrics").text, "ranker_feedback_duplicates_total") == 10
    d.stop()
    assert sorted(read_feedback(logs).column("event_id").to_pylist()) == ["e0", "e1", "e2", "e3", "e4", "e9"]


def test_the_token_is_required_when_set(deploy, tmp_path: Path) -> None:
    d = deploy(RANKER_LOG_DIR=str(tmp_path / "logs"), RANKER_FEEDBACK_TOKEN=TOKEN)
    events = [{"request_id": "r1", "item_id": "i1", "event": "click"}]
    assert post(d.client, events).status_code == 401
    wrong = post(d.client, events, headers={"Authorization": "Bearer " + TOKEN[:-1] + "x"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert post(d.client, events, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert metric(d.client.get("/metrics").text, "ranker_feedback_rejected_total", reason="unauthorized") == 2


def test_an_unwritable_directory_is_a_503_never_a_200(deploy, tmp_path: Path, manifest) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    d = deploy(RANKER_LOG_DIR=str(tmp_path / "a-file" / "logs"), **FAST)
    r = post(d.client, [{"request_id": "r1", "item_id": "i1", "event": "click", "event_id": "e1"}])
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "feedback_write_failed" and r.headers["Retry-After"]
    rank(d.client, example_request(manifest, 5))  # ranking does not depend on the log
    page = d.client.get("/metrics").text
    assert metric(page, "ranker_feedback_write_failures_total") == 1
    assert metric(page, "ranker_feedback_rejected_total", reason="write_failed") == 1


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 256 KiB tmpfs (root only; skipped where mounting is not allowed), as the impression log's tests use."""
    path = tmp_path / "tiny-disk"
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_is_a_503_and_every_200_is_on_disk(deploy, tiny_disk: Path) -> None:
    d = deploy(RANKER_LOG_DIR=str(tiny_disk), **FAST)
    answered: dict[str, int] = {}
    for b in range(40):  # ~40 KiB of Arrow per batch: the disk fills within the first ten
        events = [{"request_id": "r" * 120 + str(b), "item_id": "i" * 120, "event": "click",
                   "event_id": f"{b}-{n}"} for n in range(100)]
        r = post(d.client, events)
        for n in range(100):
            answered[f"{b}-{n}"] = r.status_code
    statuses = set(answered.values())
    assert statuses == {200, 503}, statuses
    assert metric(d.client.get("/metrics").text, "ranker_feedback_write_failures_total") > 0
    d.stop()
    on_disk = set(read_feedback(tiny_disk).column("event_id").to_pylist())
    for path in tiny_disk.rglob("feedback/*/*/.part-*.arrows"):  # the full disk kept them from compacting
        table = read_segment(path)
        if table is not None:
            on_disk |= set(table.column("event_id").to_pylist())
    assert {i for i, status in answered.items() if status == 200} <= on_disk  # never a 200 that is not there


def test_an_answered_batch_survives_kill_9(deploy, tmp_path: Path) -> None:
    """A 200 means fsynced: SIGKILL right after the answer, and the restarted replica publishes it."""
    logs = tmp_path / "logs"
    env = {"RANKER_LOG_DIR": str(logs), "RANKER_REPLICA": "kill-test", **FAST}
    d = deploy(**env)
    events = [{"request_id": "r1", "item_id": f"i{n}", "event": "click", "event_id": f"e{n}"} for n in range(3)]
    assert post(d.client, events).status_code == 200
    d.server.proc.send_signal(signal.SIGKILL)
    d.server.proc.wait(5)
    assert not feedback_files(logs) and list(logs.rglob("feedback/*/*/.part-*.arrows"))
    deploy(**env).stop()  # the same replica restarted: its recovery compacts the dead process's segment
    assert read_feedback(logs).column("event_id").to_pylist() == ["e0", "e1", "e2"]


def test_a_model_without_feedback_events_says_so(deploy, tmp_path: Path, bundle_dir: Path) -> None:
    bare = tmp_path / "no-feedback"
    shutil.copytree(bundle_dir, bare)
    manifest = json.loads((bare / "manifest.json").read_text())
    manifest.pop("feedback", None)
    (bare / "manifest.json").write_text(json.dumps(manifest))
    d = deploy(bare, RANKER_LOG_DIR=str(tmp_path / "logs"))
    r = post(d.client, [{"request_id": "r1", "item_id": "i1", "event": "click"}])
    assert r.status_code == 409 and "declares no feedback events" in r.json()["error"]["message"], r.text


def test_feedback_is_off_without_a_log_dir(deploy) -> None:
    r = post(deploy().client, [{"request_id": "r1", "item_id": "i1", "event": "click"}])
    assert r.status_code == 409 and "RANKER_LOG_DIR" in r.json()["error"]["message"], r.text


def test_ranking_answers_200_while_feedback_is_posted(deploy, tmp_path: Path, manifest) -> None:
    """Bounded load: 2 feedback clients x 150 batches of 20 events beside 1 ranking client, at most 15 s."""
    logs = tmp_path / "logs"
    d = deploy(RANKER_LOG_DIR=str(logs), **FAST)
    rank_body = orjson.dumps(example_request(manifest, 100, seed=0))
    quiet = []
    for _ in range(100):  # the ranking latency without feedback, for comparison
        start = time.perf_counter()
        assert d.client.post("/v1/rank", content=rank_body).status_code == 200
        quiet.append(time.perf_counter() - start)
    statuses: dict[str, list[int]] = {"rank": [], "feedback": []}
    rank_seconds: list[float] = []
    feedback_seconds: list[float] = []
    done = threading.Event()
    deadline = time.monotonic() + 15

    def ranker() -> None:
        with httpx.Client(base_url=d.server.url, timeout=10) as c:
            while not done.is_set() and time.monotonic() < deadline and len(statuses["rank"]) < 2000:
                start = time.perf_counter()
                statuses["rank"].append(c.post("/v1/rank", content=rank_body).status_code)
                rank_seconds.append(time.perf_counter() - start)

    def poster(worker: int) -> None:
        with httpx.Client(base_url=d.server.url, timeout=10) as c:
            for b in range(150):
                if time.monotonic() > deadline:
                    return
                events = [{"request_id": f"r{worker}-{b}", "item_id": f"i{n}", "event": "watch_seconds",
                           "value": float(n), "event_id": f"{worker}-{b}-{n}"} for n in range(20)]
                start = time.perf_counter()
                statuses["feedback"].append(post(c, events).status_code)
                feedback_seconds.append(time.perf_counter() - start)

    threads = [threading.Thread(target=ranker)] + [threading.Thread(target=poster, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join(30)
    done.set()
    threads[0].join(30)
    d.stop()
    assert statuses["rank"] and set(statuses["rank"]) == {200}
    assert len(statuses["feedback"]) == 300 and set(statuses["feedback"]) == {200}
    assert read_feedback(logs).num_rows == 300 * 20
    p50 = statistics.median(feedback_seconds) * 1000
    print(f"feedback under load: 300 batches of 20, p50 {p50:.2f} ms, max {max(feedback_seconds) * 1000:.1f} ms; "
          f"{len(statuses['rank'])} rank requests (100 candidates), all 200, p50 "
          f"{statistics.median(rank_seconds) * 1000:.2f} ms (alone: {statistics.median(quiet) * 1000:.2f} ms)")


def test_a_chunked_body_past_the_limit_is_a_413(deploy, tmp_path: Path) -> None:
    d = deploy(RANKER_LOG_DIR=str(tmp_path / "logs"), RANKER_FEEDBACK_MAX_BODY_BYTES="2048")

    def chunks():
        yield b'{"events": ['
        for _ in range(40):
            yield b'{"request_id": "r", "item_id": "i", "event": "click"},'
        yield b'{"request_id": "r", "item_id": "i", "event": "click"}]}'

    r = d.client.post("/v1/feedback", content=chunks())
    assert r.status_code == 413, r.text
