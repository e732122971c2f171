"""OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (the SDK reads the other
OTEL_* variables itself). A task row keeps the W3C traceparent of the request that wrote it, and
the worker's run of each attempt continues that trace: one trace from POST /tasks to the job."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opentelemetry.sdk.trace.export import SpanExporter

    from orchestrator.settings import Settings

TRACEPARENT = "traceparent"


def start(settings: Settings, service_name: str, exporter: SpanExporter | None = None) -> bool:
    """Install this process's tracer provider (once) and instrument asyncpg (every SQL
    statement, whichever engine sends it), Redis and httpx; True when tracing is on. `exporter`
    replaces the OTLP one."""
    if active():
        return True
    if exporter is None and not settings.otel_exporter_otlp_endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    # Spans leave in batches from a thread of their own; a test's exporter gets each at once.
    processor = BatchSpanProcessor(OTLPSpanExporter()) if exporter is None else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    # asyncpg, not SQLAlchemy: the SQLAlchemy instrumentation refuses SQLAlchemy 2.1.
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    return True


def active() -> bool:
    from opentelemetry.sdk.trace import TracerProvider

    return isinstance(trace.get_tracer_provider(), TracerProvider)


def traceparent() -> str | None:
    """The current span's W3C traceparent, for a task row to carry; None when not tracing."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


@contextlib.contextmanager
def attempt_span(task_type: str, parent: str | None, /, **attributes: Any) -> Iterator[None]:
    """The span of one attempt's run, a child of the span that wrote the task."""
    context = propagate.extract({TRACEPARENT: parent}) if parent else None
    tracer = trace.get_tracer("orchestrator.runner")
    with tracer.start_as_current_span(
        f"run {task_type}", context=context, kind=SpanKind.CONSUMER, attributes=attributes
    ):
        yield
