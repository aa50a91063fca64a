import orjson

from service.examples import example_request


def metric(text: str, name: str) -> float:
    """Value of one sample line `name value` (name with labels) in the exposition text; 0 if absent."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


EXPORTED = ["ranker_request_duration_seconds", "ranker_inference_duration_seconds", "ranker_candidates_per_request",
            "ranker_requests_total", "ranker_profile_requests_total", "ranker_model_info", "ranker_model_loads_total",
            "ranker_weights_reloads_total", "ranker_features_defaulted_total", "ranker_features_clipped_total",
            "ranker_request_unknown_fields_total", "ranker_head_score"]


def test_every_metric_is_exported_before_it_has_a_sample(client):
    text = client.get("/metrics").text
    for name in EXPORTED:
        assert f"# HELP {name} " in text, name


def test_metrics_count_requests_heads_and_loads(client, manifest):
    body = example_request(manifest, 25)
    body["user"]["user_activity"] = 1e308  # beyond the training range: clipped
    body["user"]["typo"] = 1
    client.post("/v1/rank", content=orjson.dumps(body))
    client.post("/v1/rank", content=b"{bad json")
    text = client.get("/metrics").text
    assert metric(text, 'ranker_features_clipped_total{feature="user_activity"}') == 1
    assert metric(text, 'ranker_request_unknown_fields_total{field="user.typo"}') == 1
    assert metric(text, 'ranker_requests_total{status="200"}') == 1
    assert metric(text, 'ranker_requests_total{status="422"}') == 1
    assert metric(text, 'ranker_request_duration_seconds_count{profile="default",status="200"}') == 1
    assert metric(text, 'ranker_request_duration_seconds_count{profile="",status="422"}') == 1
    assert metric(text, "ranker_candidates_per_request_sum") == 25
    assert metric(text, "ranker_inference_duration_seconds_count") == 1
    assert metric(text, 'ranker_model_info{version="1"}') == 1
    assert metric(text, 'ranker_model_loads_total{result="success"}') == 1
    assert metric(text, 'ranker_weights_reloads_total{result="success"}') == 1
    for task in manifest.task_names:
        assert metric(text, f'ranker_head_score_count{{task="{task}"}}') == 25
        assert metric(text, f'ranker_head_score_bucket{{le="+Inf",task="{task}"}}') == 25
    # Probabilities are <= 1: every click score falls in the le="1.0" bucket.
    assert metric(text, 'ranker_head_score_bucket{le="1.0",task="click"}') == 25
