"""Hot reload against a real uvicorn subprocess: weights edits, new bundles, refused bundles."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import orjson
import pytest
from server_helpers import ADMIN_TOKEN, wait_until

from service.contract.bundle import MANIFEST_FILE
from service.examples import example_request


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rank(d, body: dict) -> dict:
    r = d.client.post("/v1/rank", content=orjson.dumps(body))
    assert r.status_code == 200, r.text
    return r.json()


def test_weights_edit_applies_within_2s_and_a_broken_edit_keeps_the_old(deploy, manifest):
    d = deploy()
    body = example_request(manifest, 50, seed=9)
    before = rank(d, body)
    assert before["weights_generation"] == 1
    write_atomically(d.weights_path, "profiles:\n  default:\n    rating: 1.0\n")
    t0 = time.monotonic()
    assert wait_until(lambda: rank(d, body)["weights_generation"] == 2, timeout=2.0)
    elapsed = time.monotonic() - t0
    after = rank(d, body)
    assert [i["score"] for i in after["items"]] == [i["scores"]["rating"] for i in after["items"]]
    assert elapsed < 2.0

    write_atomically(d.weights_path, "profiles:\n  default:\n    rating: 1.0\n    not_a_task: 2.0\n")
    assert wait_until(lambda: metric(d.client.get("/metrics").text,
                                     'ranker_weights_reloads_total{result="failed"}') == 1, timeout=2.0)
    still = rank(d, body)
    assert still["weights_generation"] == 2 and still["items"] == after["items"]
    assert "profiles.default.not_a_task" in d.client.get("/v1/models").json()["weights"]["last_error"]
    assert "profiles.default.not_a_task" in d.server.logs()


def publish_modified(d, edit_manifest=None, edit_model: bool = False) -> int:
    """Publish a copy of the served bundle, optionally with its manifest or model bytes changed."""
    work = d.root / f"bundle-copy-{time.monotonic_ns()}"
    shutil.copytree(d.bundle_dir, work)
    if edit_manifest is not None:
        path = work / MANIFEST_FILE
        manifest = json.loads(path.read_text())
        edit_manifest(manifest)
        path.write_text(json.dumps(manifest))
    if edit_model:
        with open(work / "model.onnx", "ab") as f:
            f.write(b"\0")  # any change breaks the sha256 recorded in the manifest
    return d.registry.publish(work)


def ready_version(d) -> int | None:
    return d.client.get("/v2/health/ready").json().get("model_version")


def test_new_bundle_is_picked_up_and_corrupt_ones_are_refused(deploy, manifest):
    d = deploy()
    body = example_request(manifest, 20)
    assert publish_modified(d) == 2
    assert wait_until(lambda: rank(d, body)["model_version"] == 2, timeout=5.0)

    def bad_parity(m: dict) -> None:
        first = next(iter(m["parity_sample"]["outputs"]))
        m["parity_sample"]["outputs"][first][0] += 0.5

    def other_tasks(m: dict) -> None:  # the weights name `rating`; this model calls it `stars`
        for t in m["tasks"]:
            t["name"] = "stars" if t["name"] == "rating" else t["name"]

    # One at a time: the server follows CURRENT, so a version replaced before a poll is never seen.
    for edits, kind in (({"edit_model": True}, "sha256"), ({"edit_manifest": bad_parity}, "parity"),
                        ({"edit_manifest": other_tasks}, "weights")):
        version = publish_modified(d, **edits)
        assert wait_until(lambda v=version: str(v) in d.client.get("/v1/models").json()["refused_versions"], 5.0)
        reason = d.client.get("/v1/models").json()["refused_versions"][str(version)]
        assert kind in reason, reason
        out = rank(d, body)  # the old model keeps serving
        assert out["model_version"] == 2 and ready_version(d) == 2
    text = d.client.get("/metrics").text
    assert metric(text, 'ranker_model_loads_total{result="failed"}') == 2
    assert metric(text, 'ranker_model_loads_total{result="refused"}') == 1
    assert metric(text, 'ranker_model_info{version="2"}') == 1
    logs = d.server.logs()
    assert logs.count("model version refused") == 3
    # A good version after the bad ones is taken again.
    good = publish_modified(d)
    assert wait_until(lambda: rank(d, body)["model_version"] == good, timeout=5.0)


@pytest.mark.slow  # two server processes (about 3 s); tests/service/api/test_admin.py checks the same in-process
def test_admin_routes_need_a_token_and_are_absent_without_one(deploy):
    with_token, without = deploy(), deploy(admin_token=None)
    assert without.client.post("/v1/admin/reload").status_code == 404
    assert with_token.client.post("/v1/admin/reload").status_code == 401
    r = with_token.client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200 and r.json()["status"]["model"]["version"] == 1
