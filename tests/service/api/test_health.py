from fastapi.testclient import TestClient

from service.app import create_app


def test_live_and_ready(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    r = client.get("/v2/health/ready")
    assert r.status_code == 200 and r.json() == {"ready": True, "model_version": 1, "weights_generation": 1}


def test_not_ready_without_a_model(make_settings, tmp_path):
    with TestClient(create_app(make_settings(registry_root=str(tmp_path / "empty")))) as c:
        assert c.get("/v2/health/live").status_code == 200
        r = c.get("/v2/health/ready")
        assert r.status_code == 503 and "no verified model" in r.json()["reason"] and r.headers["retry-after"]
        r = c.post("/v1/rank", content=b'{"user": {}, "candidates": [{"item_id": "a"}]}')
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready" and r.headers["retry-after"] == "1"


def test_not_ready_without_valid_weights(make_settings, weights_path):
    weights_path.write_text("profiles: {default: {click: -1}}")
    with TestClient(create_app(make_settings())) as c:
        r = c.get("/v2/health/ready")
        assert r.status_code == 503 and "profiles.default.click.weight" in r.json()["reason"]
