"""/v1/rank over real HTTP against a uvicorn subprocess: parity with PyTorch, profiles, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import orjson
import pytest

from service.examples import example_request


def requests_from_test_rows(trained, n_requests: int) -> list[tuple[dict, np.ndarray]]:
    """Real requests from the test split (one request_id = one user and context) with the row
    indices of their candidates (first occurrence of each item: ids must be unique)."""
    spec, table = trained.spec, trained.prepared.splits.test
    enc = trained.prepared.encoders
    rows = table.to_pylist()
    by_request: dict = {}
    for i, row in enumerate(rows):
        by_request.setdefault(row[spec.data.request_id], []).append(i)
    out = []
    for idx in list(by_request.values())[:n_requests]:
        first, seen, keep = rows[idx[0]], set(), []
        for i in idx:
            if rows[i]["item_id"] not in seen:
                seen.add(rows[i]["item_id"])
                keep.append(i)
        body = {"user": {n: first[n] for n in enc.by_source("user")},
                "context": {n: first[n] for n in enc.by_source("context")},
                "candidates": [{"item_id": rows[i]["item_id"], **{n: rows[i][n] for n in enc.by_source("item")}}
                               for i in keep],
                "profile": "click_only"}
        for i in keep:  # one request = one user and one context
            assert all(rows[i][n] == first[n] for n in enc.by_source("user") + enc.by_source("context"))
        out.append((body, np.asarray(keep)))
    return out


def test_scores_match_pytorch_on_the_same_rows(shared, trained, manifest):
    """Per-task scores equal the PyTorch model's on the same rows (encoded by the trainer's own
    pipeline), calibrated as the manifest says: within 1e-4, relative for heads in large natural
    units (watch time in seconds)."""
    from training.bundle.calibration import calibrate_columns
    from training.evaluation.inference import export_heads, predict

    raw = predict(export_heads(trained.model, trained.spec, trained.prepared.scalers), trained.prepared.test)
    assert any(t.calibration is not None for t in manifest.tasks)  # the demo spec calibrates its heads
    expected_all = calibrate_columns(manifest.tasks, raw)
    tasks = trained.spec.task_names()
    worst = 0.0
    for body, rows in requests_from_test_rows(trained, 8):
        r = shared.client.post("/v1/rank", content=orjson.dumps(body))
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
        position = {c["item_id"]: k for k, c in enumerate(body["candidates"])}
        got = np.array([[it["scores"][t] for t in tasks] for it in items])
        expected = expected_all[rows][[position[it["item_id"]] for it in items]]
        diff = np.abs(got - expected) / np.maximum(1.0, np.abs(expected))
        worst = max(worst, float(diff.max()))
        # click_only profile: the combined score is exactly the click head.
        np.testing.assert_allclose([it["score"] for it in items], got[:, tasks.index("click")], rtol=0, atol=0)
    print(f"worst |server - torch| / max(1, |torch|) = {worst:.2e}")
    assert worst < 1e-4, worst


def test_profiles_order_as_the_formula_predicts(shared, manifest):
    body = example_request(manifest, 200, seed=5)
    by_profile = {}
    for profile in ("satisfaction_first", "engagement_first", "click_only"):
        r = shared.client.post("/v1/rank", content=orjson.dumps({**body, "profile": profile}))
        assert r.status_code == 200 and r.json()["profile"] == profile
        by_profile[profile] = r.json()["items"]
    stats = {t.name: t.score_stats for t in manifest.tasks}

    def formula(scores: dict, weights: dict) -> float:
        return sum(w * (scores[t] - stats[t].mean) / stats[t].std for t, w in weights.items())

    sat = {"click": 0.3, "like": 1.0, "rating": 1.0}
    eng = {"click": 1.0, "watch_time": 1.0}
    heads = {it["item_id"]: it["scores"] for it in by_profile["click_only"]}
    for profile, weights in (("satisfaction_first", sat), ("engagement_first", eng)):
        predicted = sorted(heads, key=lambda i, w=weights: -formula(heads[i], w))
        assert [it["item_id"] for it in by_profile[profile]] == predicted
    assert [i["item_id"] for i in by_profile["satisfaction_first"]] != [i["item_id"] for i in by_profile["engagement_first"]]


def test_unknown_categories_and_missing_optional_features_score_normally(shared):
    body = {"user": {"user_id": "nobody-we-know"}, "context": {},
            "candidates": [{"item_id": "never-seen-1", "item_category": "no-such-category"},
                           {"item_id": "never-seen-2", "item_popularity": None}, {"item_id": 42}]}
    r = shared.client.post("/v1/rank", content=orjson.dumps(body))
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 3 and all(np.isfinite(i["score"]) for i in r.json()["items"])


def _candidates(n: int) -> list[dict]:
    return [{"item_id": f"i{k}"} for k in range(n)]


BAD_INPUTS = [
    ("malformed JSON", b'{"user": {}, "candidates": [', 422, "body"),
    ("missing candidates", b'{"user": {}}', 422, "candidates"),
    ("empty candidates", b'{"user": {}, "candidates": []}', 422, "candidates"),
    ("too many candidates", orjson.dumps({"user": {}, "candidates": _candidates(5001)}), 413, "candidates"),  # default 5,000
    ("duplicate item ids", b'{"user": {}, "candidates": [{"item_id": "a"}, {"item_id": "b"}, {"item_id": "a"}]}',
     422, "candidates[2].item_id"),
    ("wrong type (list)", b'{"user": {}, "candidates": {"item_id": "a"}}', 422, "candidates"),
    ("wrong type (feature)", b'{"user": {}, "candidates": [{"item_id": "a", "item_popularity": "high"}]}', 422,
     "candidates[0].item_popularity"),
    ("NaN numeric", b'{"user": {}, "candidates": [{"item_id": "a", "item_popularity": NaN}]}', 422,
     "candidates[0].item_popularity"),
    ("Infinity numeric", b'{"user": {"user_activity": Infinity}, "candidates": [{"item_id": "a"}]}', 422,
     "user.user_activity"),
    ("unknown profile", b'{"user": {}, "candidates": [{"item_id": "a"}], "profile": "nope"}', 422, "profile"),
    ("nested 5,000 levels deep", b'{"user": ' + b"[" * 5000 + b"]" * 5000 + b', "candidates": [{"item_id": "a"}]}',
     422, "body"),
    ("nested deeply in a candidate", b'{"user": {}, "candidates": [{"item_id": "a", "x": ' + b'{"a":' * 3000 + b"1"
     + b"}" * 3000 + b"}]}", 422, "body"),
]


@pytest.mark.parametrize(("raw", "status", "field"), [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_its_status_and_names_the_field(shared, raw, status, field):
    r = shared.client.post("/v1/rank", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["fields"][0]["field"] == field


def test_oversized_body_is_413_by_length_and_while_streaming(shared):
    big = orjson.dumps({"user": {}, "candidates": _candidates(5), "pad": "x" * (2 * 1024 * 1024)})
    r = shared.client.post("/v1/rank", content=big)
    assert r.status_code == 413 and r.json()["error"]["fields"][0]["field"] == "body"
    chunks = (big[i:i + 65536] for i in range(0, len(big), 65536))  # chunked: no Content-Length
    r = shared.client.post("/v1/rank", content=chunks)
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    assert shared.client.get("/v2/health/ready").status_code == 200  # and the server is fine


def test_a_server_error_is_json_and_logged_once_with_its_access_line(deploy, bundle_dir, manifest, tmp_path):
    """A bundle from before clip ranges scores 1e308 as inf: the 500 carries the error body, its access
    line names the error, and the server log holds its traceback once (not uvicorn's as well)."""
    old = tmp_path / "no-clip-ranges"
    shutil.copytree(bundle_dir, old)
    raw = orjson.loads((old / "manifest.json").read_bytes())
    for f in raw["features"]["numeric"]:
        f.pop("clip_min", None)
        f.pop("clip_max", None)
    (old / "manifest.json").write_bytes(orjson.dumps(raw))
    d = deploy(bundle=old)
    body = example_request(manifest, 3, seed=2)
    for f in manifest.features.numeric:
        for target in body["candidates"] if f.source == "item" else [body[f.source]]:
            target[f.name] = 1e308
    r = d.client.post("/v1/rank", content=orjson.dumps(body), headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500 and r.json()["error"]["code"] == "non_finite_score", r.text
    d.server.stop()
    lines = [orjson.loads(line) for line in d.server.logs().splitlines() if line.startswith("{")]
    tracebacks = [line for line in lines if "exc" in line]
    assert len(tracebacks) == 1 and "ModelOutputError" in tracebacks[0]["exc"], tracebacks
    assert tracebacks[0]["request_id"] == "boom-1"
    access = next(line for line in lines if line["logger"] == "service.access")
    assert access["status"] == 500 and "non-finite" in access["error"] and access["request_id"] == "boom-1"
