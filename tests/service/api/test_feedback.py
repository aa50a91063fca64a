"""The documented /v1/feedback body is the one the server decodes (no drift between OpenAPI and msgspec)."""

from __future__ import annotations

from service.feedback.events import Event


def test_openapi_documents_the_feedback_body_the_decoder_takes(client):
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/v1/feedback"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    event = body["properties"]["events"]["items"]
    assert set(event["properties"]) == set(Event.__struct_fields__)
    fields = Event.__struct_fields__
    required = list(fields[:len(fields) - len(Event.__struct_defaults__)])  # those without a default
    assert event["required"] == required == ["request_id", "item_id", "event"]
    assert {"200", "401", "409", "413", "422", "503"} <= set(post["responses"])


def test_feedback_is_off_without_a_log_dir(client):
    r = client.post("/v1/feedback", json={"events": [{"request_id": "r", "item_id": "i", "event": "click"}]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "feedback_off"
