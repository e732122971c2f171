"""The Prometheus endpoints of `orchestrator api` and `orchestrator worker`, scraped while they work."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from load.databases import migrated_database
from load.service import Service, free_port
from orchestrator.auth.keys import issue_key
from orchestrator.auth.models import Scope
from tests.helpers import bearer, one_worker, submit, wait_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from orchestrator.settings import Settings

OPS = Path(__file__).parents[2] / "ops"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def metric_names(port: int) -> set[str]:
    """Every metric the endpoint serves, those without a sample yet (nothing due) included."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics", timeout=10)).text
    return set(re.findall(r"^# TYPE (\w+)", text, re.MULTILINE)) | {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def own_database(server_urls: tuple[str, str], settings: Settings) -> AsyncIterator[Settings]:
    """A database and a queue of the test's own: no other test's task is counted here."""
    async with migrated_database(server_urls[0], "orchestrator_metrics") as url:
        yield settings.model_copy(
            update={"database_url": url, "queue_name": f"metrics-{uuid.uuid4().hex[:8]}"}
        )


async def test_a_scrape_counts_what_the_api_and_the_workers_did(start_api, own_database, tmp_path, markers):
    settings = own_database
    api_port, worker_port = free_port(), free_port()
    service = await start_api(
        DATABASE_URL=str(settings.database_url),
        QUEUE_NAME=settings.queue_name,
        METRICS_PORT=str(api_port),
        JOB_PACKAGES='["jobs", "tests.jobs"]',
    )
    worker = one_worker(settings, tmp_path / "worker.log", METRICS_PORT=str(worker_port))
    worker.start()
    key = await issue_key(settings, "metrics", Scope.WRITE)
    try:
        async with httpx.AsyncClient(base_url=service.base_url, headers=bearer(key), timeout=30) as api:
            tasks = [await submit(api, "noop") for _ in range(10)]
            failing = await submit(api, "flaky", {"marker_dir": str(markers), "permanent": True})
            flaky = await submit(
                api, "flaky", {"marker_dir": str(markers), "fail_attempts": 1}, max_attempts=3
            )
            later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
            cancelled = await submit(api, "noop", run_at=later)
            assert (await api.post(f"/tasks/{cancelled}/cancel")).status_code == 200
            for task in [*tasks, flaky]:
                assert (await wait_for(api, task, timeout_s=60))["status"] == "COMPLETED"
            assert (await wait_for(api, failing, timeout_s=60))["status"] == "FAILED"
            assert (await api.get("/tasks/not-a-uuid")).status_code in (400, 404)
            for method in ("FOO", "BAR"):
                assert (await api.request(method, f"/no/such/{uuid.uuid4()}")).status_code == 404

        api_after, worker_after = await scrape(api_port), await scrape(worker_port)
        assert value(api_after, "orchestrator_tasks_total", type="noop", event="submitted") == 11
        assert value(api_after, "orchestrator_tasks_total", type="flaky", event="submitted") == 2
        assert value(api_after, "orchestrator_tasks_total", type="noop", event="cancelled") == 1
        # Both Granian workers' requests, by route template, not by the id in the path.
        posts = {"method": "POST", "path": "/tasks", "status_code": "202"}
        assert value(api_after, "orchestrator_http_request_duration_seconds_count", **posts) == 13
        reads = posts | {"method": "GET", "path": "/tasks/{task_id}", "status_code": "200"}
        assert value(api_after, "orchestrator_http_request_duration_seconds_count", **reads) >= 12
        # No route: one series, whatever path or method a client makes up.
        unmatched = {"method": "OTHER", "path": "unmatched", "status_code": "404"}
        assert value(api_after, "orchestrator_http_request_duration_seconds_count", **unmatched) == 2
        assert not [name for name, labels in api_after if any(task in str(labels) for task in tasks)]
        assert ("orchestrator_db_connections_in_use", frozenset({("role", "api")})) in api_after

        events = {
            ("noop", "started"): 10,
            ("noop", "completed"): 10,
            ("flaky", "started"): 3,
            ("flaky", "retried"): 1,
            ("flaky", "failed"): 1,
            ("flaky", "completed"): 1,
        }
        for (type_, event), count in events.items():
            counted = value(worker_after, "orchestrator_tasks_total", type=type_, event=event)
            assert counted == count, (type_, event)
        assert value(worker_after, "orchestrator_task_run_seconds_count", type="noop") == 10
        assert value(worker_after, "orchestrator_task_queue_wait_seconds_count", type="flaky") == 3
        assert value(worker_after, "orchestrator_workers", state="live") == 1
        assert value(worker_after, "orchestrator_database_up") == 1
        assert value(worker_after, "orchestrator_reconciler_rounds_total") >= 1
        assert value(worker_after, "orchestrator_tasks_due", type="noop") == 0
        await ops_queries_run(api_port, worker_port, tmp_path)

        # A Granian worker killed and replaced: what it counted still counts.
        assert service.process is not None
        granian_workers = psutil.Process(service.process.pid).children()
        os.kill(granian_workers[0].pid, signal.SIGKILL)
        async with asyncio.timeout(30):
            while len(psutil.Process(service.process.pid).children()) < len(granian_workers):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        await service.wait_ready()
        again = await scrape(api_port)
        assert value(again, "orchestrator_http_request_duration_seconds_count", **posts) == 13
        assert value(again, "orchestrator_tasks_total", type="noop", event="submitted") == 11
    finally:
        worker.kill_leftovers()


async def test_a_metrics_port_in_use_stops_the_command_with_one_line(settings, service_env, tmp_path):
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        env = service_env | {"DATABASE_URL": str(settings.database_url), "REDIS_URL": settings.redis_dsn}
        busy = Service(["worker"], env | {"METRICS_PORT": str(port)}, tmp_path / "worker.log")
        busy.start()
        assert busy.process is not None
        assert busy.process.wait(timeout=60) == 1
    assert f"METRICS_PORT: cannot serve metrics on 127.0.0.1:{port}" in busy.log.read_text()


async def ops_queries_run(api_port: int, worker_port: int, tmp_path: Path) -> None:
    """A real Prometheus scrapes both endpoints; every query of the Grafana dashboard and every
    alert rule is then accepted by it and names only metrics the endpoints serve."""
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus is missing: .ci/system-packages installs it")
        pytest.skip("prometheus is not installed (Debian's package prometheus)")
    config = tmp_path / "prometheus.yml"
    targets = {"orchestrator-api": api_port, "orchestrator-worker": worker_port}
    jobs = [
        {"job_name": job, "scrape_interval": "1s", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        for job, port in targets.items()
    ]
    config.write_text(json.dumps({"scrape_configs": jobs}))  # JSON is YAML
    port = free_port()
    server = subprocess.Popen(  # noqa: ASYNC220  (started here, not waited for)
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=10) as client:

            async def query(expr: str) -> list[Any]:
                answer = (await client.get("/query", params={"query": expr})).json()
                assert answer["status"] == "success", (expr, answer)
                return list(answer["data"]["result"])

            async with asyncio.timeout(60):
                while len(await _quietly(query, "up == 1")) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.5)
            served = await metric_names(api_port) | await metric_names(worker_port)
            for expr in _ops_expressions():
                await query(expr.replace("$__rate_interval", "1m"))
                for name in set(re.findall(r"\borchestrator_[a-z_]+", expr)):
                    assert name in served, (name, expr)
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _quietly(query: Any, expr: str) -> list[Any]:
    with contextlib.suppress(httpx.TransportError):
        return list(await query(expr))
    return []


def _ops_expressions() -> list[str]:
    dashboard = json.loads((OPS / "grafana" / "orchestrator.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = yaml.safe_load((OPS / "prometheus" / "alerts.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) > 20
    return exprs
