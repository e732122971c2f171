"""OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (the SDK reads the other
OTEL_* variables itself). A task row keeps the W3C traceparent of the request that wrote it, and
the worker's run of each attempt continues that trace: one trace from POST /tasks to the job."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from opentelemetry.context import Context
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Link, TraceState
    from opentelemetry.util.types import Attributes

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
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    resource = Resource.create({"service.name": service_name})
    provider = TracerProvider(resource=resource, sampler=ParentBased(root=WorkOnly()))
    # Spans leave in batches from a thread of their own. The endpoint is the setting's (which
    # may come from .env, where the SDK would not look), with OTLP's path for traces.
    if exporter is None:
        endpoint = f"{str(settings.otel_exporter_otlp_endpoint).rstrip('/')}/v1/traces"
        processor: SpanProcessor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
    else:
        processor = SimpleSpanProcessor(exporter)
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
    if not trace.get_current_span().get_span_context().is_valid:
        return None  # tracing off, or no span: skip the propagators on every task written
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


class WorkOnly(Sampler):
    """A trace starts at a request (SERVER) or a task's run (CONSUMER), never at a lone Redis or
    SQL call: SAQ polls Redis every second per worker, the reconciler and the lease renewals
    query PostgreSQL, and each would be a trace of its own."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        decision = Decision.RECORD_AND_SAMPLE if kind in WORK else Decision.DROP
        return SamplingResult(decision, attributes if decision == Decision.RECORD_AND_SAMPLE else None)

    def get_description(self) -> str:
        return "WorkOnly"


WORK = (SpanKind.SERVER, SpanKind.CONSUMER)
