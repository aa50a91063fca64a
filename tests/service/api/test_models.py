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


def test_openapi_shows_the_id_only_request_and_the_lookup_summary(client):
    from service.contract.request import request_model

    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/v1/rank"]["post"]["requestBody"]["content"]["application/json"]
    ids_only = content["examples"]["ids_only"]["value"]
    assert all(list(c) == ["item_id"] for c in ids_only["candidates"]) and ids_only["user"] == {"user_id": "u42"}
    request_model(None).model_validate(ids_only)  # the documented example is a valid body
    response = spec["components"]["schemas"]["RankResponse"]["properties"]
    assert "lookup" in response and "not_found" in spec["components"]["schemas"]["LookupSummary"]["properties"]


def test_models_shows_the_lookups_and_the_feature_store(client, manifest):
    out = client.get("/v1/models").json()
    assert out["model"]["lookups"] == manifest.lookups
    assert out["feature_store"]["store"] == "embedded"
    assert out["feature_store"]["item"] == {"version": None, "rows": 0, "refused": {}}  # none published here


def test_examples_cli_prints_an_id_only_request(bundle_dir, capsys):
    import orjson

    from service.examples import main

    main([str(bundle_dir), "--ids-only", "--candidates", "5"])
    body = orjson.loads(capsys.readouterr().out)
    assert [list(c) for c in body["candidates"]] == [["item_id"]] * 5
    assert list(body["user"]) == ["user_id"] and set(body["context"]) == {"device", "hour"}
