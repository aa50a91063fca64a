"""Traces of /v1/rank: the span tree, its attributes, W3C propagation and error status, in-process against
the real demo bundle, with the SDK's in-memory exporter in place of OTLP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import orjson
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from server_helpers import REPO, wait_ready

from service.app import create_app
from service.examples import example_request
from service.live.runtime import Runtime
from service.settings import Settings
from service.tracing import STAGES, Tracing, build_tracing, stage, traces_url

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def traced(make_settings: Callable[..., Settings]) -> Iterator[tuple[TestClient, InMemorySpanExporter]]:
    """The app with a real SDK tracer provider whose spans land in memory (exported as each one ends)."""
    settings = make_settings()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with TestClient(create_app(settings, Runtime(settings, tracing=Tracing(provider, settings.model_name)))) as c:
        wait_ready(c)
        yield c, exporter


def request_spans(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    spans = exporter.get_finished_spans()
    (server,) = [s for s in spans if s.kind == SpanKind.SERVER]
    return server, [s for s in spans if s is not server]


def test_rank_is_a_server_span_with_a_child_per_stage(traced, manifest):
    client, exporter = traced
    body = example_request(manifest, 40, seed=1, profile="click_only")
    r = client.post("/v1/rank", content=orjson.dumps(body), headers={"traceparent": TRACEPARENT, "X-Request-ID": "req-7"})
    assert r.status_code == 200, r.text
    server, children = request_spans(exporter)
    # The caller's trace continues: our span is its child, and the response names our span.
    assert f"{server.context.trace_id:032x}" == TRACE_ID and f"{server.parent.span_id:016x}" == PARENT_ID
    assert server.parent.is_remote
    assert r.headers["traceparent"] == f"00-{TRACE_ID}-{server.context.span_id:016x}-01"
    assert server.name == "POST /v1/rank" and server.status.status_code == StatusCode.UNSET
    attrs = server.attributes
    assert attrs["ranker.request_id"] == "req-7" == r.headers["x-request-id"]
    assert (attrs["ranker.model.name"], attrs["ranker.model.version"], attrs["ranker.model.role"]) == (
        manifest.model_name, 1, "current")
    assert (attrs["ranker.profile"], attrs["ranker.candidates"], attrs["http.response.status_code"]) == (
        "click_only", 40, 200)
    # Six stages, in the pipeline's order, each a direct child of the request's span and inside it.
    assert [c.name for c in sorted(children, key=lambda s: s.start_time)] == list(STAGES)
    for child in children:
        assert child.parent.span_id == server.context.span_id and child.context.trace_id == server.context.trace_id
        assert server.start_time <= child.start_time <= child.end_time <= server.end_time


def test_without_traceparent_a_new_trace_starts_and_the_response_names_it(traced, manifest):
    client, exporter = traced
    r = client.post("/v1/rank", content=orjson.dumps(example_request(manifest, 5, request_id="body-id")))
    server, children = request_spans(exporter)
    assert server.parent is None and len(children) == len(STAGES)
    ctx = server.context  # flags 03: sampled, and a random trace id (W3C Trace Context level 2)
    assert r.headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
    assert ctx.trace_flags.sampled
    assert server.attributes["ranker.request_id"] == "body-id"


def test_a_refused_request_sets_error_status_on_its_span_and_the_stage(traced, manifest):
    client, exporter = traced
    body = example_request(manifest, 3, profile="nope")
    r = client.post("/v1/rank", content=orjson.dumps(body), headers={"traceparent": TRACEPARENT, "X-Request-ID": "bad-1"})
    assert r.status_code == 422
    server, children = request_spans(exporter)
    assert server.status.status_code == StatusCode.ERROR and "unknown profile" in server.status.description
    assert server.attributes["http.response.status_code"] == 422 and server.attributes["ranker.request_id"] == "bad-1"
    assert r.headers["traceparent"].split("-")[1] == TRACE_ID  # the error response names the trace too
    assert [c.name for c in children] == ["parse"]  # refused before the feature store

    exporter.clear()
    assert client.post("/v1/rank", content=b'{"user": {}, "candidates": "none"}').status_code == 422
    server, (parse,) = request_spans(exporter)
    assert server.status.status_code == StatusCode.ERROR
    assert parse.name == "parse" and parse.status.status_code == StatusCode.ERROR
    assert [e.name for e in parse.events] == ["exception"]


def test_off_by_default_no_header_and_no_tracer(client, manifest, make_settings):
    assert build_tracing(make_settings()) is None
    assert client.app.state.runtime.tracing is None
    r = client.post("/v1/rank", content=orjson.dumps(example_request(manifest, 3)))
    assert r.status_code == 200 and "traceparent" not in r.headers
    assert stage(None, "parse") is stage(None, "encode")  # one shared null context: no object per stage


def test_the_tracing_sdk_is_imported_only_when_tracing_is_on_and_never_torch_or_pandas():
    # (redis-py imports the SDK's metrics and resources when installed; its own telemetry stays off.)
    code = ("import sys\nfrom service.app import create_app\nfrom service.settings import Settings\n"
            "from service.tracing import build_tracing\n"
            "assert build_tracing(Settings()) is None\n"
            "on = ('opentelemetry.sdk.trace', 'opentelemetry.exporter')\n"
            "assert not [m for m in sys.modules if m.startswith(on)], 'tracing sdk imported while off'\n"
            "t = build_tracing(Settings(otlp_endpoint='http://127.0.0.1:9'))\n"
            "assert t is not None and 'opentelemetry.sdk.trace' in sys.modules\n"
            "t.shutdown()\n"
            "print(sorted(m for m in ('torch', 'pandas', 'training') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("endpoint", "url"), [
    ("http://collector:4318", "http://collector:4318/v1/traces"),
    ("http://collector:4318/", "http://collector:4318/v1/traces"),
    ("https://otel.example/v1/traces", "https://otel.example/v1/traces"),
    ("http://gateway/otlp/traces", "http://gateway/otlp/traces"),
])
def test_a_base_endpoint_gets_the_traces_path(endpoint, url):
    assert traces_url(endpoint) == url


def test_an_endpoint_that_is_not_http_is_refused_at_startup():
    with pytest.raises(ValueError, match="otlp_endpoint"):
        Settings(otlp_endpoint="collector:4317")


def test_new_traces_are_sampled_one_in_ten_by_default_and_a_callers_decision_is_kept():
    tracing = build_tracing(Settings(otlp_endpoint="http://127.0.0.1:9"))  # nothing is ended, so nothing is sent
    try:
        assert Settings().trace_sample == 0.1
        assert tracing.start_request({"traceparent": TRACEPARENT}, "/v1/rank").span.is_recording()
        unsampled = TRACEPARENT[:-2] + "00"
        assert not tracing.start_request({"traceparent": unsampled}, "/v1/rank").span.is_recording()
        recorded = sum(tracing.start_request({}, "/v1/rank").span.is_recording() for _ in range(2000))
        assert 120 < recorded < 280  # 10 % of 2,000 by trace id: 200 expected, outside this about 1 run in 10^8
    finally:
        tracing.shutdown()


def test_a_trace_the_caller_did_not_sample_makes_no_stage_spans_and_still_answers_its_traceparent(traced, manifest):
    client, exporter = traced
    unsampled = TRACEPARENT[:-2] + "00"
    r = client.post("/v1/rank", content=orjson.dumps(example_request(manifest, 20, seed=2)),
                    headers={"traceparent": unsampled})
    assert r.status_code == 200, r.text
    assert exporter.get_finished_spans() == ()
    assert r.headers["traceparent"].startswith(f"00-{TRACE_ID}-") and r.headers["traceparent"].endswith("-00")
    request = client.app.state.runtime.tracing.start_request({"traceparent": unsampled}, "/v1/rank")
    assert not request.recording
    assert stage(request, "encode") is stage(None, "encode")  # the shared null context, no span object
