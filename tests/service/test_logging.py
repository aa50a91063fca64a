import json
import logging

import orjson

from service.examples import example_request
from service.logging import JsonFormatter


def test_json_lines_carry_extras():
    record = logging.LogRecord("service.access", logging.INFO, __file__, 1, "rank", (), None)
    record.request_id, record.candidates = "abc", 12
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "rank" and line["level"] == "info" and line["request_id"] == "abc" and line["candidates"] == 12


def test_each_request_logs_id_count_version_profile_latency(client, manifest, caplog):
    caplog.set_level(logging.INFO, logger="service.access")
    client.post("/v1/rank", content=orjson.dumps(example_request(manifest, 7, request_id="log-me", profile="click_only")))
    record = next(r for r in caplog.records if getattr(r, "request_id", None) == "log-me")
    assert (record.candidates, record.model_version, record.profile, record.status) == (7, 1, "click_only", 200)
    assert record.latency_ms > 0 and record.weights_generation == 1
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "log-me" and line["latency_ms"] == record.latency_ms
