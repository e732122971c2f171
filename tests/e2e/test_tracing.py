"""OpenTelemetry: one trace from the request that wrote a task to the worker's run of it, sent
over OTLP/HTTP by the real processes to a collector the test runs on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.factories import lead_body
from tests.helpers import bearer, one_worker, serving, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = "tracing-test-secret"  # noqa: S105  (a test fixture)


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver (and, at /crm, a CRM that takes every push)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Receiver)
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Receiver(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            request = ExportTraceServiceRequest.FromString(body)
            with self.server.lock:
                for resource in request.resource_spans:
                    service = next(
                        a.value.string_value for a in resource.resource.attributes if a.key == "service.name"
                    )
                    for scope in resource.scope_spans:
                        self.server.spans += [
                            {
                                "service": service,
                                "name": span.name,
                                "trace": span.trace_id.hex(),
                                "id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "scope": scope.scope.name,
                                "task_id": next(
                                    (a.value.string_value for a in span.attributes if a.key == "task_id"),
                                    None,
                                ),
                            }
                            for span in scope.spans
                        ]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    with serving(Collector()) as server:
        yield server


async def test_a_trace_runs_from_post_leads_through_the_workers_run_of_its_task(
    start_api, api_key, settings, tmp_path, collector
):
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    api = await start_api(workers=1, **otel)
    crm = {"CRM_WEBHOOK_URL": f"{collector.url}/crm", "CRM_WEBHOOK_SECRET": SECRET}
    worker = one_worker(settings, tmp_path / "worker.log", **otel, **crm)
    worker.start()
    try:
        async with httpx.AsyncClient(base_url=api.base_url, headers=bearer(api_key), timeout=30) as client:
            lead = (await client.post("/leads", json=lead_body())).json()
            [sync] = (await client.get(f"/leads/{lead['id']}/tasks")).json()["items"]
            assert (await wait_for(client, sync["id"], timeout_s=60))["status"] == "COMPLETED"

        def spans_of_the_run() -> list[dict[str, Any]]:
            with collector.lock:
                spans = list(collector.spans)
            # This test's own task: a task an earlier test left (a retry coming due) may run on
            # this worker too, in a trace of its own.
            runs = [
                span for span in spans if span["name"] == "run crm_update" and span["task_id"] == sync["id"]
            ]
            if not runs:
                return []
            trace = [span for span in spans if span["trace"] == runs[-1]["trace"]]
            # Each process exports on its own: wait for the API's spans as well as the worker's.
            whole = any(span["scope"].endswith("httpx") for span in trace) and any(
                span["service"] == "orchestrator-api" and not span["parent"] for span in trace
            )
            return trace if whole else []

        async with asyncio.timeout(30):
            while not (trace := spans_of_the_run()):  # noqa: ASYNC110  (spans arrive from other processes)
                await asyncio.sleep(0.2)
    finally:
        worker.kill_leftovers()

    by_id = {span["id"]: span for span in trace}
    [request] = [span for span in trace if span["service"] == "orchestrator-api" and not span["parent"]]
    assert request["name"].startswith("POST /leads")
    [run] = [span for span in trace if span["name"] == "run crm_update"]
    assert run["service"] == "orchestrator-worker"

    def ancestors(span: dict[str, Any]) -> list[str]:
        chain = []
        while span["parent"] in by_id:
            span = by_id[span["parent"]]
            chain.append(span["id"])
        return chain

    # The run continues the request's trace; under it, its SQL statements and its push to the CRM.
    assert request["id"] in ancestors(run)
    under_run = [span for span in trace if run["id"] in ancestors(span)]
    assert any(span["scope"].endswith("asyncpg") for span in under_run), under_run
    assert any(span["scope"].endswith("httpx") for span in under_run), under_run
    # The request's own statements, and its enqueue in Redis.
    under_request = [
        span for span in trace if request["id"] in ancestors(span) and span["service"] == "orchestrator-api"
    ]
    assert any(span["scope"].endswith("asyncpg") for span in under_request), under_request
    assert any(span["scope"].endswith("redis") for span in trace), trace
