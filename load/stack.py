"""The service under load and the faults the restart scenario inflicts on it.

The stack owns the embedded PostgreSQL and Redis (when no URL is configured) so that it can
restart them too; `orchestrator up` is started against their URLs, exactly as a user would
run it against their own servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
import httpx
import redis.asyncio as aioredis

from load import LOAD_RATE_LIMIT
from load.service import Service, free_port, parent_of
from orchestrator.auth.keys import issue_key, revoke_key
from orchestrator.auth.models import Scope
from orchestrator.db import in_transaction
from orchestrator.embedded import embedded_services
from orchestrator.settings import to_libpq_url

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from orchestrator.settings import Settings


@dataclass
class Fault:
    at_s: float
    what: str
    detail: str = ""
    took_s: float = 0.0


class Stack:
    def __init__(
        self,
        settings: Settings,
        out: Path,
        api_workers: int,
        worker_processes: int,
        third_parties: dict[str, str] | None = None,
        metrics: bool = True,
    ) -> None:
        self.settings, self.out = settings, out
        self.third_parties = third_parties or {}  # the SMTP server and the CRM the jobs talk to
        self.api_workers, self.worker_processes = api_workers, worker_processes
        self.owns_postgres, self.owns_redis = settings.database_url is None, settings.redis_url is None
        # On a shared Redis, our own queue: flushing it touches nobody else's keys.
        self.queue_name = "orchestrator" if self.owns_redis else f"load-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.metrics_port = free_port() if metrics else 0
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.database_url = self.redis_url = ""
        self.running_settings = settings  # with the URLs of the servers, once they run
        self.key_name = f"load-{uuid.uuid4().hex[:8]}"
        self._servers = ExitStack()
        self.service: Service | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start_servers(self) -> None:
        self._servers = ExitStack()
        settings = self._servers.enter_context(
            embedded_services(self.settings.model_copy(update={"data_dir": self.out / "data"}))
        )
        self.database_url, self.redis_url = to_libpq_url(str(settings.database_url)), str(settings.redis_url)
        self.running_settings = settings

    def stop_servers(self) -> None:
        self._servers.close()

    async def save_metrics(self, path: Path) -> None:
        """The service's Prometheus endpoint as the load leaves it (nothing when metrics are off)."""
        if not self.metrics_port:
            return
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=10) as client:
                path.write_text((await client.get(f"http://127.0.0.1:{self.metrics_port}/metrics")).text)

    async def start_service(self) -> None:
        env = (
            os.environ
            | {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                "QUEUE_NAME": self.queue_name,
                "API_WORKERS": str(self.api_workers),
                "WORKER_PROCESSES": str(self.worker_processes),
                "EMAIL_OUTBOX_DIR": str(self.out / "outbox"),
                "PYTHONUNBUFFERED": "1",
                "TEST_JOB_TYPES": "true",  # the profile submits noop tasks
                "METRICS_PORT": str(self.metrics_port),
            }
            | self.third_parties
        )
        self.service = Service(["up", "--port", str(self.port)], env, self.out / "service.log", self.port)
        self.service.start()
        await self.service.wait_ready(timeout_s=180)

    async def issue_api_key(self) -> str:
        """A write key for the users, with the load run's own rate limit (the service has migrated)."""
        return await issue_key(self.running_settings, self.key_name, Scope.WRITE, LOAD_RATE_LIMIT)

    async def revoke_api_key(self) -> None:
        await in_transaction(self.running_settings, lambda session: revoke_key(session, self.key_name))

    async def stop_service(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self.service is not None and self.service.process is not None:
            await asyncio.to_thread(self.service.stop, sig, 60.0)

    def close(self) -> None:
        if self.service is not None:
            self.service.kill_leftovers()
        self.stop_servers()

    @property
    def up_pid(self) -> int:
        if self.service is None or self.service.process is None:
            raise RuntimeError("the service is not running")
        return self.service.process.pid

    # -- faults ---------------------------------------------------------------------------------

    async def reload_api(self) -> str:
        """SIGHUP: Granian replaces its workers one by one on the shared socket."""
        os.kill(self.up_pid, signal.SIGHUP)
        return f"SIGHUP to pid {self.up_pid}"

    async def kill_job_worker(self) -> str:
        """SIGKILL the worker process holding a PROCESSING task (or the one that last ran one)."""
        connection = await asyncpg.connect(self.database_url)
        try:
            rows = await connection.fetch(
                "(SELECT worker_id FROM tasks WHERE status = 'PROCESSING' AND worker_id IS NOT NULL LIMIT 5)"
                " UNION ALL (SELECT worker_id FROM task_events WHERE worker_id IS NOT NULL"
                " ORDER BY at DESC LIMIT 20)"
            )
        finally:
            await connection.close()
        host = socket.gethostname()
        for row in rows:
            name, pid, _nonce = row["worker_id"].rsplit("-", 2)
            # Only a child of our own `up`: never a process of anybody else's.
            if name == host and pid.isdigit() and parent_of(int(pid)) == self.up_pid:
                os.kill(int(pid), signal.SIGKILL)
                return f"SIGKILL to job worker pid {pid}"
        return "no job worker of ours had run a task yet; nothing killed"

    async def flush_redis(self) -> str:
        client = aioredis.from_url(self.redis_url)
        try:
            if self.owns_redis:
                await client.flushall()
                return "FLUSHALL"
            keys = [key async for key in client.scan_iter(match=f"*{self.queue_name}*", count=1000)]
            if keys:
                await client.delete(*keys)
            return f"deleted the {len(keys)} keys of queue {self.queue_name}"
        finally:
            await client.aclose()

    async def restart(self) -> str:
        """SIGTERM to `up` (API and workers), then the servers we own, then all of it again."""
        await self.stop_service()
        await asyncio.to_thread(self.stop_servers)
        await asyncio.to_thread(self.start_servers)
        await self.start_service()
        owned = [
            name for name, own in (("PostgreSQL", self.owns_postgres), ("Redis", self.owns_redis)) if own
        ]
        return "API, job workers" + "".join(f", {name}" for name in owned)

    async def crash(self) -> str:
        """SIGKILL to every process of `up` at once (API and job workers mid-request), then start it."""
        await self.stop_service(signal.SIGKILL)
        await self.start_service()
        return "SIGKILL to the process group of `up`"


async def break_things(stack: Stack, duration_s: float, faults: list[Fault]) -> None:
    """The restart scenario: one fault after another, spread over the run."""
    schedule: list[tuple[float, str, Callable[[], Awaitable[str]]]] = [
        (0.15, "graceful restart of the API workers", stack.reload_api),
        (0.30, "job worker killed", stack.kill_job_worker),
        (0.45, "Redis flushed", stack.flush_redis),
        (0.60, "whole service restarted", stack.restart),
        (0.80, "service crashed", stack.crash),
    ]
    started = time.monotonic()
    for fraction, what, action in schedule:
        await asyncio.sleep(max(0.0, started + fraction * duration_s - time.monotonic()))
        begun = time.monotonic()
        detail = await action()
        faults.append(Fault(round(begun - started, 1), what, detail, round(time.monotonic() - begun, 1)))
        print(
            f"  fault at {begun - started:5.1f} s: {what} ({detail}), {time.monotonic() - begun:.1f} s",
            flush=True,
        )
