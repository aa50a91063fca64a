"""Traces of POST /v1/rank (OpenTelemetry), off unless RANKER_OTLP_ENDPOINT is set.

    POST /v1/rank                       SERVER span: the request, child of an incoming `traceparent`
      parse  lookup  encode  session.run  combine  respond     one child span per pipeline stage

The route starts the SERVER span on the event loop; the stages run on a scoring thread, so their
parent is passed along explicitly (`RequestTrace.context`), never looked up in a context variable.
Spans are exported by the SDK's BatchSpanProcessor: a queue and one exporter thread, so a request
only appends finished spans; a slow or dead collector drops spans (the queue is bounded), never
delays or fails a ranking.

With tracing off, `Runtime.tracing` is None: the route tests that, the pipeline's `stage(None, name)`
returns a shared null context, and no OpenTelemetry object is made; the SDK's tracer and exporter are
not even imported. By default one new trace in ten is recorded (RANKER_TRACE_SAMPLE; a caller's sampled
`traceparent` is always followed): a recorded request's 7 spans cost ~9 % of its CPU in Python.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider

    from service.live.pipeline import Ranked
    from service.settings import Settings

SERVICE_NAME = "mtl-ranker"
STAGES = ("parse", "lookup", "encode", "session.run", "combine", "respond")
TRACES_PATH = "/v1/traces"  # OTLP/HTTP's path for spans, appended to a base endpoint
_OFF = contextlib.nullcontext()  # reusable: entering it does nothing


class Tracing:
    """The tracer of one server process and the W3C propagator it reads and writes `traceparent` with.

    Args:
        provider: an SDK TracerProvider with its span processors (`build_tracing` adds the OTLP one;
            tests add an in-memory exporter).
        model_name: the served model's name (an attribute of every request span).
    """

    def __init__(self, provider: TracerProvider, model_name: str) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("service.tracing")
        self.propagator = TraceContextTextMapPropagator()
        self.model_name = model_name

    def start_request(self, headers: Mapping[str, str], path: str) -> RequestTrace:
        """The SERVER span of one request; a valid `traceparent` header makes it that trace's child."""
        parent = self.propagator.extract(headers)
        span = self.tracer.start_span(f"POST {path}", context=parent, kind=SpanKind.SERVER, attributes={
            "http.request.method": "POST", "http.route": path, "url.path": path,
            "ranker.model.name": self.model_name})
        return RequestTrace(self, span)

    def shutdown(self) -> None:
        """Export what is queued (bounded by the processor's export timeout) and stop the exporter thread."""
        self.provider.shutdown()


class RequestTrace:
    """One request's SERVER span and the context its stage spans are started in."""

    def __init__(self, tracing: Tracing, span: trace.Span) -> None:
        self.tracing = tracing
        self.span = span
        self.context = trace.set_span_in_context(span)
        # A trace the sampler dropped records nothing: its stages make no span objects at all (the
        # SDK would make six non-recording ones), and its response still carries the `traceparent`.
        self.recording = span.is_recording()

    def stage(self, name: str) -> AbstractContextManager[Any]:
        return StageSpan(self.tracing.tracer, name, self.context) if self.recording else _OFF

    def traceparent(self) -> str | None:
        """The W3C `traceparent` of this request's span (sent back in the response's header)."""
        carrier: dict[str, str] = {}
        self.tracing.propagator.inject(carrier, context=self.context)
        return carrier.get("traceparent")

    def finish(self, status: int, ranked: Ranked | None, error: str | None, request_id: str | None) -> None:
        """Attributes known once the request is answered, the span's status (ERROR for 4xx and 5xx), its end."""
        if not self.recording:
            return
        span = self.span
        attributes: dict[str, Any] = {"http.response.status_code": status}
        if ranked is not None:
            attributes.update({
                "ranker.request_id": ranked.request_id, "ranker.model.version": ranked.model_version,
                "ranker.model.role": ranked.model_role, "ranker.profile": ranked.profile,
                "ranker.candidates": ranked.candidates, "ranker.weights_generation": ranked.weights_generation})
            if ranked.arm is not None:
                attributes["ranker.arm"] = ranked.arm
        elif request_id:
            attributes["ranker.request_id"] = request_id
        span.set_attributes(attributes)
        if status >= 400:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR, error))
        span.end()


class StageSpan:
    """A child span for the duration of a `with` block; an exception raised inside is recorded on it and
    sets its status to ERROR. Not made current: nothing in a stage starts spans of its own, and
    `start_as_current_span`'s context switch and generator cost a quarter more per span."""

    __slots__ = ("context", "name", "span", "tracer")

    def __init__(self, tracer: trace.Tracer, name: str, context: Context) -> None:
        self.tracer, self.name, self.context = tracer, name, context

    def __enter__(self) -> trace.Span:
        self.span = self.tracer.start_span(self.name, context=self.context)
        return self.span

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {getattr(error, 'message', error)}"))
        self.span.end()


def stage(trace: RequestTrace | None, name: str) -> AbstractContextManager[Any]:
    """A child span of the request for one pipeline stage; with tracing off a shared null context."""
    return _OFF if trace is None else trace.stage(name)


def traces_url(endpoint: str) -> str:
    """A base OTLP/HTTP endpoint (http://collector:4318) gets /v1/traces; a URL with a path is kept."""
    base = endpoint.rstrip("/")
    path = base.partition("://")[2].partition("/")[2]
    return base if path else base + TRACES_PATH


def build_tracing(settings: Settings) -> Tracing | None:
    """OTLP/HTTP export through a BatchSpanProcessor, or None (tracing off) when no endpoint is set.

    The SDK also reads the standard variables: the exporter's OTEL_EXPORTER_OTLP_HEADERS / _TIMEOUT /
    _COMPRESSION / _CERTIFICATE, the batch processor's OTEL_BSP_MAX_QUEUE_SIZE / _SCHEDULE_DELAY /
    _MAX_EXPORT_BATCH_SIZE, and OTEL_RESOURCE_ATTRIBUTES."""
    if not settings.otlp_endpoint:
        return None
    # The SDK and the exporter (protobuf, requests) are imported only by a server that traces.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    instance = f"{settings.replica or socket.gethostname()}-p{os.getpid()}"  # as the log files name a process
    resource = Resource.create({"service.name": SERVICE_NAME, "service.instance.id": instance})
    # ParentBased: a request whose caller sampled (or dropped) its trace follows that decision.
    root = ALWAYS_ON if settings.trace_sample >= 1 else TraceIdRatioBased(settings.trace_sample)
    provider = TracerProvider(resource=resource, sampler=ParentBased(root))
    exporter = OTLPSpanExporter(endpoint=traces_url(settings.otlp_endpoint))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider, settings.model_name)
