"""A canary and a shadow on a real server (uvicorn subprocess, a registry directory, onnxruntime): the
expected stable share of users gets the canary, abort and promote move everyone, a broken canary is
refused while CURRENT serves, a shadow's rankings reach only the impression log, and no request fails
under load through a canary start, promote and abort."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest
from impressions_helpers import metric, read_log
from server_helpers import wait_until

from service.examples import example_request

FAST = {"RANKER_LOG_FLUSH_SECONDS": "0.2"}
USERS = [f"user-{i}" for i in range(60)]


def publish_copy(d, name: str, make_current: bool = False) -> int:
    copy = d.root / name
    shutil.copytree(d.bundle_dir, copy)
    return d.registry.publish(copy, make_current=make_current)


def body_for(manifest, user: str | None, seed: int = 0, **kw) -> bytes:
    body = example_request(manifest, 20, seed=seed, **kw)
    if user is None:
        body["user"].pop("user_id", None)
    else:
        body["user"]["user_id"] = user
    return orjson.dumps(body)


def served(d, body: bytes) -> tuple[int, str]:
    r = d.client.post("/v1/rank", content=body)
    assert r.status_code == 200, r.text
    out = r.json()
    return out["model_version"], out["model_role"]


def canary_state(d) -> dict | None:
    return d.client.get("/v1/models").json()["canary"]


def test_a_stable_share_of_users_gets_the_canary_then_abort_and_promote_move_everyone(deploy, manifest) -> None:
    d = deploy()
    v2 = publish_copy(d, "v2")
    record = d.registry.start_canary(v2, 0.3)
    assert wait_until(lambda: (canary_state(d) or {}).get("serving") is True, timeout=20)
    expected = {u: record.takes(u) for u in USERS}
    assert 5 < sum(expected.values()) < 35  # the hash's share, near 0.3 of 60
    for user in USERS:
        first = served(d, body_for(manifest, user, seed=1))
        again = served(d, body_for(manifest, user, seed=2))  # other candidates, same user: same model
        assert first == again == ((v2, "canary") if expected[user] else (1, "current")), user
    assert served(d, body_for(manifest, None)) == (1, "current")  # no user key: CURRENT
    text = d.client.get("/metrics").text
    assert metric(text, "ranker_canary_info", mode="canary", version=str(v2)) == 1
    assert metric(text, "ranker_model_requests_total", role="canary") == 2 * sum(expected.values())
    assert metric(text, 'ranker_model_info{version="1"}') == 1

    d.registry.abort_canary()
    assert wait_until(lambda: canary_state(d) is None, timeout=10)
    assert {served(d, body_for(manifest, u)) for u in USERS} == {(1, "current")}
    assert metric(d.client.get("/metrics").text, "ranker_canary_info", mode="canary", version=str(v2)) == 0

    d.registry.start_canary(v2, 0.3)
    assert wait_until(lambda: (canary_state(d) or {}).get("serving") is True, timeout=20)
    d.registry.promote(v2)
    assert wait_until(lambda: served(d, body_for(manifest, USERS[0])) == (v2, "current"), timeout=10)
    assert {served(d, body_for(manifest, u)) for u in USERS} == {(v2, "current")}
    assert canary_state(d) is None


def test_a_broken_canary_is_refused_while_current_serves(deploy, manifest) -> None:
    d = deploy()
    broken = d.root / "broken"
    shutil.copytree(d.bundle_dir, broken)
    (broken / "model.onnx").write_bytes((broken / "model.onnx").read_bytes()[:-64])  # sha256 no longer matches
    v2 = d.registry.publish(broken, make_current=False)
    d.registry.start_canary(v2, 1.0)
    assert wait_until(lambda: (canary_state(d) or {}).get("error") is not None, timeout=20)
    state = canary_state(d)
    assert state["serving"] is False and "sha256" in state["error"]
    assert str(v2) in d.client.get("/v1/models").json()["refused_versions"]
    assert {served(d, body_for(manifest, u)) for u in USERS[:20]} == {(1, "current")}
    text = d.client.get("/metrics").text
    assert metric(text, 'ranker_model_loads_total{result="failed"}') == 1  # refused once, not retried by polling
    assert metric(text, "ranker_canary_info", mode="canary", version=str(v2)) == 0
    assert "canary version refused; CURRENT serves every request" in d.server.logs()


def test_a_shadow_is_logged_beside_current_and_never_served(deploy, manifest, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    d = deploy(RANKER_LOG_DIR=str(logs), **FAST)
    v2 = publish_copy(d, "v2")
    d.registry.start_canary(v2, 0.05, "shadow")
    assert wait_until(lambda: (canary_state(d) or {}).get("serving") is True, timeout=20)
    answers = {}
    for i, user in enumerate(USERS[:12]):
        r = d.client.post("/v1/rank", content=body_for(manifest, user, seed=i, request_id=f"req-{i}", top_k=5))
        assert r.status_code == 200
        answers[r.json()["request_id"]] = r.json()
    assert {(a["model_version"], a["model_role"]) for a in answers.values()} == {(1, "current")}
    assert wait_until(lambda: metric(d.client.get("/metrics").text, "ranker_model_requests_total",
                                     role="shadow") == len(answers), timeout=10)
    d.stop()  # the writer drains and publishes
    rows = read_log(logs).to_pylist()
    for request_id, answer in answers.items():
        mine = [r for r in rows if r["request_id"] == request_id]
        current = sorted((r for r in mine if r["model_role"] == "current"), key=lambda r: r["position"])
        shadow = sorted((r for r in mine if r["model_role"] == "shadow"), key=lambda r: r["position"])
        assert [r["item_id"] for r in current] == [str(i["item_id"]) for i in answer["items"]]
        assert {r["model_version"] for r in current} == {1} and {r["model_version"] for r in shadow} == {v2}
        assert [r["position"] for r in shadow] == [1, 2, 3, 4, 5]
        assert shadow[0]["user_key"] == current[0]["user_key"]


CLIENTS = 6
DURATION = 9.0  # seconds of load, bounded


@pytest.mark.slow
def test_no_request_fails_under_load_through_canary_start_promote_and_abort(deploy, manifest) -> None:
    d = deploy()
    statuses: Counter = Counter()
    seen: Counter = Counter()
    stop, lock = threading.Event(), threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=d.server.url, timeout=10.0) as c:
            n = 0
            while not stop.is_set() and n < 5000:
                n += 1
                try:
                    r = c.post("/v1/rank", content=body_for(manifest, f"user-{k}-{n % 50}", seed=k))
                    status, key = r.status_code, (r.json().get("model_version"), r.json().get("model_role"))
                except httpx.HTTPError as e:
                    status, key = type(e).__name__, None
                with lock:
                    statuses[status] += 1
                    seen[key] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    start = time.monotonic()
    try:
        v2 = publish_copy(d, "v2")
        steps = [lambda: d.registry.start_canary(v2, 0.5), lambda: d.registry.promote(v2),
                 lambda: d.registry.start_canary(publish_copy(d, "v3"), 0.5), lambda: d.registry.abort_canary()]
        for step in steps:
            time.sleep(DURATION / (len(steps) + 1))
            step()
        time.sleep(max(0.0, DURATION - (time.monotonic() - start)))
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    total = sum(statuses.values())
    print(f"{total} requests in {time.monotonic() - start:.1f}s; statuses {dict(statuses)}; served {dict(seen)}")
    assert set(statuses) == {200}, statuses
    assert total >= 100
    assert {(1, "current"), (2, "canary"), (2, "current"), (3, "canary")} <= set(seen)
