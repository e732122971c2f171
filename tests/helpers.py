"""What the tests call directly: auth headers, the app in-process, tasks submitted and waited for.

Fixtures live in the conftest.py files and use these; test modules import them from here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time
import uuid
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from saq.job import Status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from chaos.hosts import clock_skew_env, faketime_library
from load.service import Service
from orchestrator.app import create_app
from orchestrator.db import in_transaction
from orchestrator.job import discover
from orchestrator.queue import make_queue
from orchestrator.runner.execute import Runner
from orchestrator.tasks.status import TERMINAL_STATUSES

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Iterator
    from http.server import ThreadingHTTPServer
    from pathlib import Path

    from litestar import Litestar

    from orchestrator.settings import Settings

# High enough never to refuse a test, low enough that the moving window stays small.
TEST_RATE_LIMIT = "10000/second"
# The key callbacks are signed with in the tests; receivers check with the Standard Webhooks
# library's own reading of it.
CALLBACK_SECRET = "whsec_" + base64.b64encode(b"callback-key-of-the-tests").decode()

DUE_A_MINUTE_AGO = text(
    "UPDATE tasks SET run_at = now() - interval '1 min', updated_at = now() - interval '1 min' WHERE id = :id"
)


@asynccontextmanager
async def in_process_runner(settings: Settings, job_packages: list[str]) -> AsyncIterator[Runner]:
    """run_task's Runner in the test's own event loop, on the session's servers, knowing the job
    types of `job_packages`."""
    engine = create_async_engine(settings.sqlalchemy_url)
    queue = make_queue(settings)
    try:
        async with httpx.AsyncClient() as http:
            yield Runner(
                engine=engine.execution_options(isolation_level="AUTOCOMMIT"),
                sessions=async_sessionmaker(engine),
                queue=queue,
                registry=discover(job_packages, test_types=True),
                settings=settings,
                worker_id="test-host:1",
                http=http,
            )
    finally:
        await queue.disconnect()
        await engine.dispose()


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    """A local HTTP server a test plays a third party with, in a thread, closed afterwards."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def one_worker(settings: Settings, log: Path, **extra_env: str) -> Service:
    """`orchestrator worker` with one process (not yet started), on the session's servers, with
    the caller's environment minus the URLs the settings give."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= settings_env(settings) | {"PYTHONUNBUFFERED": "1", "SHUTDOWN_GRACE_S": "1"} | extra_env
    return Service(["worker", "--processes", "1", "--concurrency", "4"], env, log)


def clock_off_by(seconds: float) -> dict[str, str]:
    """The environment that runs a child process with its clock `seconds` off (libfaketime), as
    on a host whose clock is wrong. Skips the test when libfaketime is missing, but under CI."""
    library = faketime_library()
    if library is None:
        if os.environ.get("CI"):
            pytest.fail("libfaketime is missing: .ci/system-packages installs it")
        pytest.skip("libfaketime is missing (Debian package faketime)")
    return clock_skew_env(library, seconds)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def app_client(settings: Settings, api_key: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The app in-process, with its real lifespan, engine and Redis client, sending `api_key`."""
    async with AsyncTestClient(app=create_app(settings)) as client:
        client.headers.update(bearer(api_key))
        yield client


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = {
        name.upper(): json.dumps(value) if isinstance(value, list) else str(value)
        for name, value in settings.model_dump(
            exclude={"crm_webhook_secret", "callback_secret", "data_dir"}
        ).items()
        if value is not None
    }
    if settings.callback_secret is not None:
        env["CALLBACK_SECRET"] = settings.callback_secret.get_secret_value()
    return env


async def submit(api, type_: str = "noop", payload: dict[str, Any] | None = None, **fields: Any) -> str:
    response = await api.post("/tasks", json={"type": type_, "payload": payload or {}, **fields})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/tasks/{response.json()['id']}"
    return str(response.json()["id"])


async def wait_for(
    client: AsyncTestClient[Any],
    task_id: str,
    statuses: Collection[str] = TERMINAL_STATUSES,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Poll GET /tasks/{id} until its status is one of `statuses`."""
    task: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                task = (await client.get(f"/tasks/{task_id}")).json()
                if task["status"] in statuses:
                    return task
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"task {task_id} never reached {statuses}: {task}") from None


def transitions(task: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(event["from_status"], event["to_status"]) for event in task["history"]]


def runs(markers: Path, task_id: str, suffix: str = "started") -> list[int]:
    """The attempts whose handler started (or was cancelled), from the side-effect files."""
    return sorted(int(path.name.split(".")[1]) for path in markers.glob(f"{task_id}.*.{suffix}"))


async def dequeued_unclaimed(settings: Settings, task_id: str, dequeued_s_ago: float) -> None:
    """The task due and untouched for a minute, its SAQ job taken by a worker `dequeued_s_ago`
    and never claimed: a worker killed between SAQ's dequeue and our claim, or one claiming now."""
    await in_transaction(
        settings, lambda session: session.execute(DUE_A_MINUTE_AGO, {"id": uuid.UUID(task_id)})
    )
    queue = make_queue(settings)
    try:
        job = await queue.job(f"{task_id}:0")
        assert job is not None
        # Due now in SAQ's incomplete set too, whatever run_at the task was submitted with.
        await queue.redis.zadd(queue.namespace("incomplete"), {job.id: 0})
        job.status, job.started = Status.ACTIVE, int((time.time() - dequeued_s_ago) * 1000)
        await queue.redis.set(job.id, queue.serialize(job))
    finally:
        await queue.disconnect()


ROUND_AFTER = text(
    "SELECT r.started_at FROM reconciler_rounds r, tasks t"
    " WHERE r.name = 'reconcile' AND t.id = :id AND r.started_at > t.run_at"
)


async def reconciler_rounds_after_run_at(settings: Settings, task_id: str, rounds: int = 2) -> None:
    """Until `rounds` reconciler rounds have started after the task's run_at, by the database's
    clock: every round but the last has then finished, with the task due were it pending."""
    engine = create_async_engine(settings.sqlalchemy_url)
    seen: set[Any] = set()
    try:
        async with asyncio.timeout(30):
            while len(seen) < rounds:
                async with engine.connect() as connection:
                    started = await connection.scalar(ROUND_AFTER, {"id": uuid.UUID(task_id)})
                if started is not None:
                    seen.add(started)
                await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


async def saq_job_done(settings: Settings, key: str) -> None:
    """Until SAQ's job `key` has been processed (or is gone from Redis)."""
    queue = make_queue(settings)
    try:
        async with asyncio.timeout(30):
            while (job := await queue.job(key)) is not None and job.status not in TERMINAL_SAQ:  # noqa: ASYNC110  (state in Redis)
                await asyncio.sleep(0.05)
    finally:
        await queue.disconnect()


TERMINAL_SAQ = (Status.COMPLETE, Status.FAILED, Status.ABORTED)
