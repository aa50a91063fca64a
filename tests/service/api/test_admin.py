import pytest
from fastapi.testclient import TestClient
from server_helpers import ADMIN_TOKEN, wait_until

from service.app import create_app

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_admin_routes_are_absent_without_a_token(make_settings):
    with TestClient(create_app(make_settings())) as c:
        assert c.post("/v1/admin/reload").status_code == 404
        assert c.post("/v1/admin/rollback").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-000000000000", f"Basic {ADMIN_TOKEN}", ADMIN_TOKEN])
def test_admin_needs_the_bearer_token(client, header):
    r = client.post("/v1/admin/reload", headers={"Authorization": header} if header else {})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_reload_picks_up_weights_and_a_new_version_now(client, registry, bundle_dir, weights_path):
    weights_path.write_text("profiles: {default: {click: 1.0}}\n")
    registry.publish(bundle_dir)  # version 2
    r = client.post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"]["model"]["version"] == 2
    assert out["status"]["weights"]["profiles"] == {"default": {"click": {"weight": 1.0, "transform": "identity"}}}


def test_rollback_pins_a_version_until_reload(client, registry, bundle_dir):
    registry.publish(bundle_dir)  # version 2 becomes CURRENT; the poller follows it
    assert wait_until(lambda: client.get("/v2/health/ready").json().get("model_version") == 2)
    r = client.post("/v1/admin/rollback", headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["model"]["version"] == 1 and r.json()["status"]["pinned_version"] == 1
    registry.publish(bundle_dir)  # version 3: pinned, so not followed
    assert not wait_until(lambda: client.get("/v2/health/ready").json().get("model_version") == 3, timeout=0.5)
    assert client.post("/v1/admin/reload", headers=AUTH).json()["status"]["model"]["version"] == 3


def test_rollback_to_a_missing_version_is_404(client):
    r = client.post("/v1/admin/rollback", params={"version": 99}, headers=AUTH)
    assert r.status_code == 404 and "99" in r.json()["error"]["message"]
    r = client.post("/v1/admin/rollback", params={"version": 0}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "query.version"
