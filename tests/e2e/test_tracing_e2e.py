"""Traces end to end: a real ranker-serve (uvicorn subprocess) exports OTLP/HTTP to a real receiver on
127.0.0.1, which decodes the protobuf; a rank request's caller trace continues in the server's spans."""

from __future__ import annotations

import orjson
from otlp_helpers import OtlpReceiver
from server_helpers import wait_until

from service.examples import example_request
from service.tracing import SERVICE_NAME, STAGES

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def test_rank_spans_reach_the_collector_in_the_callers_trace(deploy, manifest):
    with OtlpReceiver() as receiver:
        # A 60 s batch delay: only the shutdown's flush can deliver the spans in time, so SIGTERM is tested too.
        d = deploy(RANKER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="60000")
        body = orjson.dumps(example_request(manifest, 50, seed=3))
        r = d.client.post("/v1/rank", content=body, headers={
            "Content-Type": "application/json", "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
            "X-Request-ID": "e2e-trace-1"})
        assert r.status_code == 200, r.text
        answered = r.headers["traceparent"].split("-")
        assert answered[1] == TRACE_ID and answered[2] != PARENT_ID  # our span's id, in the caller's trace
        refused = d.client.post("/v1/rank", content=b'{"user": {}, "candidates": 7}',
                                headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert refused.status_code == 422 and refused.headers["traceparent"].split("-")[1] == TRACE_ID
        d.server.stop()  # SIGTERM: the lifespan shuts the tracer down, which exports what is queued
        assert wait_until(lambda: len(receiver.spans()) >= len(STAGES) + 3, timeout=10), receiver.spans()
        spans = receiver.spans()

    ours = [s for s in spans if s.trace_id == TRACE_ID]
    servers = [s for s in ours if s.parent_span_id == PARENT_ID]
    assert len(servers) == 2 and {s.name for s in servers} == {"POST /v1/rank"}
    (ok,) = [s for s in servers if s.attributes["http.response.status_code"] == 200]
    (bad,) = [s for s in servers if s.attributes["http.response.status_code"] == 422]
    assert ok.span_id == answered[2] and ok.kind == 2  # SPAN_KIND_SERVER
    assert ok.attributes["ranker.request_id"] == "e2e-trace-1" and ok.attributes["ranker.candidates"] == 50
    assert ok.attributes["ranker.model.name"] == manifest.model_name and ok.attributes["ranker.model.version"] == 1
    assert ok.attributes["ranker.profile"] == "default" and ok.status_code == 0  # UNSET
    assert bad.status_code == 2  # STATUS_CODE_ERROR
    children = sorted(s.name for s in ours if s.parent_span_id == ok.span_id)
    assert children == sorted(STAGES)
    assert ok.resource["service.name"] == SERVICE_NAME
