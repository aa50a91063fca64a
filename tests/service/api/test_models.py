def test_models_describes_the_served_bundle_and_weights(client, manifest):
    out = client.get("/v1/models").json()
    assert out["ready"] is True and out["pinned_version"] is None and out["refused_versions"] == {}
    assert out["model"]["version"] == 1 and out["model"]["model_sha256"] == manifest.model_sha256
    assert [t["name"] for t in out["model"]["tasks"]] == [t.name for t in manifest.tasks]
    assert "item_id" in out["model"]["features"]["item"]
    w = out["weights"]
    assert w["generation"] == 1 and w["default_profile"] == "default" and len(w["sha256"]) == 64
    assert w["profiles"]["click_only"] == {"click": {"weight": 1.0, "transform": "identity"}}


def test_openapi_documents_the_rank_body(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/rank"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"user", "candidates", "profile", "top_k"} <= set(body["properties"])


def test_openapi_rank_body_is_the_validating_schema_without_a_model(client):
    from service.contract.request import MAX_REQUEST_ID, request_json_schema

    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/rank"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    want = request_json_schema()
    assert set(body["properties"]) == set(want["properties"]) and body["required"] == want["required"]
    assert "$ref" not in str(body)  # refs into the schema's own $defs would not resolve inside OpenAPI
    assert body["properties"]["request_id"]["anyOf"][0]["maxLength"] == MAX_REQUEST_ID
    assert body["properties"]["candidates"]["items"]["required"] == ["item_id"]
