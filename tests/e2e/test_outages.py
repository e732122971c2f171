"""PostgreSQL or Redis stopped under the service, then started again: it answers clearly
while they are away, recovers on its own, and loses nothing it acknowledged.

Each test runs servers of its own (embedded), so that it can stop them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from load.service import Service, free_port
from orchestrator.auth.keys import issue_key
from orchestrator.auth.models import Scope
from orchestrator.embedded import embedded_postgres, embedded_redis
from orchestrator.schema import migrate_to_head
from orchestrator.settings import Settings
from tests.factories import lead_body
from tests.helpers import bearer, wait_for

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class Stack:
    """An embedded PostgreSQL and Redis that the test stops and starts, and the service on them."""

    def __init__(self, tmp_path, service_env) -> None:
        self.tmp_path, self.env = tmp_path, service_env
        self.redis_port = free_port()
        self.postgres, self.redis = ExitStack(), ExitStack()
        self.services: list[Service] = []
        self.api: Service | None = None

    def start_postgres(self) -> str:
        return self.postgres.enter_context(embedded_postgres(self.tmp_path / "pg", database="outage"))

    def start_redis(self) -> str:
        return self.redis.enter_context(embedded_redis(self.tmp_path / "redis", port=self.redis_port))

    async def start(self) -> httpx.AsyncClient:
        database_url, redis_url = self.start_postgres(), self.start_redis()
        settings = Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]
        await asyncio.to_thread(migrate_to_head, settings)
        key = await issue_key(settings, "outages", Scope.WRITE)
        env = self.env | {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "QUEUE_NAME": f"outage-{uuid.uuid4().hex[:8]}",
            "DB_POOL_TIMEOUT_S": "2",
            "READY_TIMEOUT_S": "1",
            "RECONCILE_INTERVAL_S": "0.5",
            "RECONCILE_GRACE_S": "1",
            "JOB_PACKAGES": '["jobs", "tests.jobs"]',
        }
        port = free_port()
        api_args = ["api", "--workers", "1", "--port", str(port)]
        self.api = Service(api_args, env, self.tmp_path / "api.log", port)
        worker = Service(["worker", "--processes", "1"], env, self.tmp_path / "worker.log")
        self.services += [self.api, worker]
        for service in self.services:
            service.start()
        await self.api.wait_ready()
        return httpx.AsyncClient(base_url=self.api.base_url, timeout=30, headers=bearer(key))

    async def wait_ready(self) -> None:
        assert self.api is not None
        await self.api.wait_ready(timeout_s=60)

    def logs(self) -> str:
        return "".join(f"\n--- {s.log.name}:\n{s.log.read_text()[-4000:]}" for s in self.services)

    def close(self) -> None:
        for service in self.services:
            service.kill_leftovers()
        self.redis.close()
        self.postgres.close()


@pytest.fixture
def stack(tmp_path, service_env):
    stack = Stack(tmp_path, service_env)
    yield stack
    stack.close()


async def retrying(send: Callable[[], Awaitable[httpx.Response]], attempts: int = 3) -> httpx.Response:
    for _ in range(attempts - 1):
        response = await send()
        if response.status_code != 503:
            return response
        await asyncio.sleep(float(response.headers.get("retry-after", "1")))
    return await send()


async def test_postgres_away_is_503_at_once_and_everything_recovers_on_its_own(stack):
    client = await stack.start()
    async with client:
        lead = (await client.post("/leads", json=lead_body())).json()
        task_id = (await client.post("/tasks", json={"type": "noop"})).json()["id"]
        assert (await wait_for(client, task_id, timeout_s=60))["status"] == "COMPLETED"

        stack.postgres.close()  # PostgreSQL stops (fast shutdown): every connection is cut

        for send in (
            lambda: client.get(f"/leads/{lead['id']}"),
            lambda: client.post("/leads", json=lead_body()),
        ):
            began = time.monotonic()
            response = await send()
            assert response.status_code == 503, response.text + stack.logs()
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["retry-after"] == "1"
            assert time.monotonic() - began < 10, stack.logs()  # bounded by the pool timeout: no hang
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert "postgres" in ready.text.lower()

        stack.start_postgres()  # same data directory, same socket: nothing else is restarted
        await stack.wait_ready()

        # A pooled connection PostgreSQL dropped fails once with 503 + Retry-After (no pre-ping,
        # see orchestrator.db); a client that honours Retry-After gets through.
        read = await retrying(lambda: client.get(f"/leads/{lead['id']}"))
        assert read.status_code == 200, stack.logs()
        assert read.json() == lead
        after = await retrying(lambda: client.post("/tasks", json={"type": "noop"}))
        assert after.status_code == 202, stack.logs()
        assert (await wait_for(client, after.json()["id"], timeout_s=60))["status"] == "COMPLETED"
    for service in stack.services:
        service.assert_running()


async def test_redis_away_still_takes_writes_and_tasks_which_run_once_it_is_back(stack):
    client = await stack.start()
    async with client:
        stack.redis.close()  # Redis stops, and with it the queue

        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert "redis" in ready.text.lower()
        lead = await client.post("/leads", json=lead_body())
        assert lead.status_code == 201
        task = await client.post("/tasks", json={"type": "noop"})
        assert task.status_code == 202  # the task row is the outbox record
        assert (await client.get(f"/tasks/{task.json()['id']}")).json()["status"] == "PENDING"

        stack.start_redis()  # same port, same append-only file
        await stack.wait_ready()

        assert (await wait_for(client, task.json()["id"], timeout_s=60))["status"] == "COMPLETED"
        syncs = (await client.get(f"/leads/{lead.json()['id']}/tasks")).json()["items"]
        assert [(t["type"], (await wait_for(client, t["id"], timeout_s=60))["status"]) for t in syncs] == [
            ("crm_update", "COMPLETED")
        ]
    for service in stack.services:
        service.assert_running()


async def test_writes_racing_a_postgres_restart_lose_nothing_acknowledged(stack):
    client = await stack.start()
    acknowledged: list[dict[str, Any]] = []
    answers: Counter[int] = Counter()
    slowest = 0.0
    stop = asyncio.Event()

    async def integrator() -> None:
        nonlocal slowest
        while not stop.is_set():
            began = time.monotonic()
            response = await client.post("/leads", json=lead_body())
            slowest = max(slowest, time.monotonic() - began)
            answers[response.status_code] += 1
            if response.status_code == 201:
                acknowledged.append(response.json())
            else:
                await asyncio.sleep(0.05)

    async with client:
        integrators = [asyncio.create_task(integrator()) for _ in range(4)]
        await asyncio.sleep(1)
        await asyncio.to_thread(stack.postgres.close)
        await asyncio.sleep(3)
        await asyncio.to_thread(stack.start_postgres)
        await stack.wait_ready()
        await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*integrators)

        assert set(answers) == {201, 503}, answers  # served, or refused clearly; never a 500
        assert slowest < 10, stack.logs()  # no request hung on the missing database
        for lead in acknowledged:
            read = await retrying(lambda lead=lead: client.get(f"/leads/{lead['id']}"))
            assert read.json() == lead
