"""/v1/rank in-process against the real demo bundle (TestClient runs the lifespan)."""

import logging

import numpy as np
import orjson
from fastapi.testclient import TestClient
from server_helpers import wait_ready, wait_until

from service.app import create_app
from service.examples import example_request
from service.profiles import compile_weights, parse_weights
from service.settings import Settings


def test_ranks_sorted_with_scores_from_the_default_profile(client, manifest):
    body = example_request(manifest, 40, seed=1)
    r = client.post("/v1/rank", content=orjson.dumps(body))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["model_version"], out["profile"], out["weights_generation"]) == (1, "default", 1)
    items = out["items"]
    assert [i["rank"] for i in items] == list(range(1, 41))
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    assert sorted(i["item_id"] for i in items) == sorted(c["item_id"] for c in body["candidates"])
    assert set(items[0]["scores"]) == {t.name for t in manifest.tasks}
    # The combined score is the profile's formula over the per-task scores it returned.
    for item in items[:5]:  # configs/weights.yaml default: {rank: 1.0}, the ranking head's score
        assert abs(item["score"] - item["scores"]["rank"]) < 1e-6


def test_top_k_profile_and_request_id(client, manifest):
    body = example_request(manifest, 30, seed=2, top_k=5, profile="click_only", request_id="req-123")
    out = client.post("/v1/rank", content=orjson.dumps(body)).json()
    assert out["request_id"] == "req-123" and out["profile"] == "click_only"
    assert len(out["items"]) == 5
    clicks = [i["scores"]["click"] for i in out["items"]]
    assert [i["score"] for i in out["items"]] == clicks  # click_only: score = P(click)
    full = client.post("/v1/rank", content=orjson.dumps({**body, "top_k": None})).json()["items"]
    assert [i["item_id"] for i in full[:5]] == [i["item_id"] for i in out["items"]]


def test_request_id_from_header_when_body_has_none(client, manifest):
    r = client.post("/v1/rank", content=orjson.dumps(example_request(manifest, 3)), headers={"X-Request-ID": "hdr-1"})
    assert r.json()["request_id"] == "hdr-1" and r.headers["x-request-id"] == "hdr-1"


def test_unknown_profile_is_422_naming_profile(client, manifest):
    r = client.post("/v1/rank", content=orjson.dumps(example_request(manifest, 3, profile="nope")))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["fields"][0]["field"] == "profile" and "default" in err["message"]


def test_unknown_categories_and_missing_features_score_normally(client):
    body = {"user": {"user_id": "someone-new"}, "candidates": [{"item_id": "brand-new"}, {"item_id": 12345},
                                                                  {"item_id": "x", "item_category": "never-seen"}]}
    r = client.post("/v1/rank", content=orjson.dumps(body))
    assert r.status_code == 200, r.text
    assert all(np.isfinite(i["score"]) for i in r.json()["items"])


def test_too_many_candidates_and_too_large_body_are_413(make_settings, manifest):
    with TestClient(create_app(make_settings(max_candidates=10, max_body_bytes=4096))) as c:
        wait_ready(c)
        r = c.post("/v1/rank", content=orjson.dumps(example_request(manifest, 11)))
        assert r.status_code == 413 and r.json()["error"]["fields"][0]["field"] == "candidates"
        big = orjson.dumps({**example_request(manifest, 5), "pad": "x" * 5000})
        r = c.post("/v1/rank", content=big)
        assert r.status_code == 413 and r.json()["error"]["fields"][0]["field"] == "body"
        # A chunked body has no Content-Length: the limit is enforced while reading.
        r = c.post("/v1/rank", content=iter([big[:3000], big[3000:]]))
        assert r.status_code == 413 and "limit" in r.json()["error"]["message"]


def test_overload_is_503_with_retry_after(client, manifest):
    runtime = client.app.state.runtime
    runtime.in_flight = runtime.settings.max_in_flight  # as if that many requests were being scored
    try:
        r = client.post("/v1/rank", content=orjson.dumps(example_request(manifest, 3)))
    finally:
        runtime.in_flight = 0
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["error"]["code"] == "overloaded"


def test_extreme_numbers_for_every_numeric_feature_are_scored_finite(client, manifest):
    """Issue 9, item 3: 1e308 / -1e308 in every numeric feature; no null or infinite score in a 200."""
    for value in (1e308, -1e308):
        body = example_request(manifest, 4, seed=3)
        for f in manifest.features.numeric:
            targets = body["candidates"] if f.source == "item" else [body[f.source]]
            for t in targets:
                t[f.name] = value
        r = client.post("/v1/rank", content=orjson.dumps(body))
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            assert item["score"] is not None and np.isfinite(item["score"]), item
            assert all(s is not None and np.isfinite(s) for s in item["scores"].values()), item


def test_x_request_id_header_is_bounded_like_the_body_request_id(client, manifest):
    body = orjson.dumps(example_request(manifest, 3))
    r = client.post("/v1/rank", content=body, headers={"X-Request-ID": "x" * 60_000})
    assert r.status_code == 422, r.text[:300]
    assert r.json()["error"]["fields"][0]["field"] == "headers.x-request-id"
    assert "x" * 200 not in r.text
    ok = client.post("/v1/rank", content=body, headers={"X-Request-ID": "y" * 128})
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "y" * 128


def test_openapi_documents_explain_contributions_and_arm(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/rank"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["explain"]["type"] == "boolean" and "add up" in body["properties"]["explain"]["description"]
    schemas = spec["components"]["schemas"]
    assert "contributions" in schemas["RankedItem"]["properties"]
    assert "arm" in schemas["RankResponse"]["properties"]


def test_experiment_arm_in_response_access_log_and_metrics(client, manifest, weights_path, caplog):
    import logging

    from server_helpers import wait_until

    weights_path.write_text(weights_path.read_text() + "\nexperiments: {name: t1, arms: {satisfaction_first: 0.5}}\n")
    assert wait_until(lambda: client.get("/v1/models").json()["weights"]["experiments"] is not None)
    caplog.set_level(logging.INFO, logger="service.access")
    arms = {}
    for i in range(30):
        body = example_request(manifest, 4, seed=i, request_id=f"arm-{i}")
        body["user"]["user_id"] = f"u{i}"
        out = client.post("/v1/rank", content=orjson.dumps(body)).json()
        arms[out["arm"]] = out["profile"]
        record = next(r for r in caplog.records if getattr(r, "request_id", None) == f"arm-{i}")
        assert (record.arm, record.profile) == (out["arm"], out["profile"])
    assert arms == {"satisfaction_first": "satisfaction_first", "control": "default"}
    text = client.get("/metrics").text
    assert 'ranker_profile_requests_total{arm="control",profile="default"}' in text
    assert 'ranker_profile_requests_total{arm="satisfaction_first",profile="satisfaction_first"}' in text


def test_5000_candidates_with_every_feature_inline_fit_the_default_limits(client, manifest):
    body = orjson.dumps(example_request(manifest, 5000, seed=3, scores=False))
    assert len(body) < Settings().max_body_bytes
    r = client.post("/v1/rank", content=body)
    assert r.status_code == 200, r.text[:300]
    items = r.json()["items"]
    assert len(items) == 5000 and "scores" not in items[0]
    assert [i["rank"] for i in items[:3]] == [1, 2, 3]


def test_unknown_fields_are_counted_and_logged_once_but_the_experiment_key_is_not(client, manifest, weights_path,
                                                                                   caplog):
    """Issue 21, item 5: a frontend typo (`age` for `Age`) shows up on a dashboard the day it ships."""
    experiment = "\nexperiments: {name: t1, key: account, arms: {satisfaction_first: 0.5}}\n"
    weights_path.write_text(weights_path.read_text() + experiment)
    assert wait_until(lambda: client.get("/v1/models").json()["weights"]["experiments"] is not None)
    caplog.set_level(logging.WARNING, logger="service.metrics")
    for seed in range(3):
        body = example_request(manifest, 4, seed=seed)
        body["user"].update(age=30, account="a1")
        body["context"]["devise"] = "tv"
        body["candidates"][0]["item_popularty"] = 3.0
        assert client.post("/v1/rank", content=orjson.dumps(body)).status_code == 200
    text = client.get("/metrics").text
    for field in ("user.age", "context.devise", "candidates.item_popularty"):
        assert f'ranker_request_unknown_fields_total{{field="{field}"}} 3.0' in text
    assert "user.account" not in text
    assert sorted(r.field for r in caplog.records) == ["candidates.item_popularty", "context.devise", "user.age"]


PRODUCT_PROFILE = """
  click_and_like:   # P(click) * P(like | click): log turns the sum into a product
    click: {weight: 1, transform: log}
    like: {weight: 1, transform: log}
"""


def test_a_log_profile_serves_the_offline_combine_of_its_heads(make_settings, weights_path, manifest):
    text = weights_path.read_text().replace("profiles:\n", "profiles:" + PRODUCT_PROFILE, 1)
    weights_path.write_text(text)
    offline = compile_weights(parse_weights(text), manifest.tasks).profiles["click_and_like"]
    with TestClient(create_app(make_settings())) as c:
        wait_ready(c)
        body = example_request(manifest, 50, seed=4, profile="click_and_like", explain=True)
        r = c.post("/v1/rank", content=orjson.dumps(body))
    assert r.status_code == 200, r.text[:300]
    items = r.json()["items"]
    heads = {t.name: np.array([i["scores"][t.name] for i in items], np.float32) for t in manifest.tasks}
    # The served heads are float32 (exact in JSON): combining them offline gives the served scores bitwise.
    np.testing.assert_array_equal([i["score"] for i in items], offline.combine(heads))
    product = heads["click"].astype(np.float64) * heads["like"].astype(np.float64)
    np.testing.assert_allclose(np.exp([i["score"] for i in items]), product, rtol=1e-12)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    np.testing.assert_allclose([i["contributions"]["like"] for i in items], np.log(heads["like"].astype(np.float64)))
